//! quick smoke test
use eddy_engine::prelude::*;

#[test]
fn wordcount_like() {
    let mut config = JobConfig::default();
    config.parallelism = Some(2);
    let env = Env::new(config);
    let out = env
        .from_iter((0..100_000u64).collect::<Vec<_>>())
        .map(|x| x * 2)
        .filter(|x| x % 3 != 0)
        .key_by(|x| x % 7)
        .reduce(|a, b| a + b)
        .collect_vec();
    let m = env.execute().unwrap();
    let got = out.take();
    println!("{} {:?}", got.len(), m);
}
