//! [`PyRandom`]: CPython's `random.Random` (MT19937, `random()` = `genrand_res53`), bit
//! for bit, so that the Nexmark generator draws the same numbers as the Flink peer
//! harness's `gen_nexmark.py` for the same seed.
//!
//! Only what the generator uses is here: seeding from a non-negative integer
//! (`random.Random(seed)`, i.e. `init_by_array` over the seed's 32-bit words) and
//! `random()`, a float in `[0, 1)` with 53 random bits.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// CPython's Mersenne Twister (`random.Random`), for reproducing its draws exactly.
///
/// Cost: 10 KiB — the state, the next state, its 624 outputs and their 312 `random()`
/// values. The draws are computed a block at a time, when the state is
/// twisted (loops the compiler vectorizes), so [`PyRandom::random`] is an index check
/// and a load.
#[derive(Clone)]
pub struct PyRandom {
    /// The raw words of the current block (what [`PyRandom::state`] returns).
    state: Box<[u32; N]>,
    /// Where the next block's raw words are computed (then swapped with `state`).
    spare: Box<[u32; N]>,
    /// `temper(state[k])` for every `k` while `index < N` (stale once the block is used
    /// up: the next twist rewrites it).
    outputs: Box<[u32; N]>,
    /// `random()` of the outputs `2i` and `2i + 1` of the block, at `i`: what a draw at
    /// an even index returns (every draw of the generator is at an even index: the
    /// stream starts at 0 or 624 and only `random()` is drawn). Valid while `index < N`.
    draws: Box<[f64; N / 2]>,
    /// The next output of the block; `N` when the block is used up.
    index: usize,
}

/// CPython's `random()` of two consecutive outputs (`genrand_res53`): 27 bits of the
/// first and 26 of the second.
#[inline(always)]
fn to_draw(a: u32, b: u32) -> f64 {
    // both fit in an i32, and a signed conversion vectorizes (an unsigned one does not)
    let (high, low) = ((a >> 5) as i32, (b >> 6) as i32);
    (f64::from(high) * 67_108_864.0 + f64::from(low)) * (1.0 / 9_007_199_254_740_992.0)
}

/// The tempering of MT19937: a raw word of the state to one 32-bit output.
#[inline(always)]
fn temper(word: u32) -> u32 {
    let mut y = word;
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c_5680;
    y ^= (y << 15) & 0xefc6_0000;
    y ^ (y >> 18)
}

impl std::fmt::Debug for PyRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyRandom")
            .field("index", &self.index)
            .finish()
    }
}

impl PyRandom {
    /// The generator of `random.Random(seed)` in CPython 3 (any version since 3.2).
    pub fn new(seed: u64) -> Self {
        let low = seed as u32;
        let high = (seed >> 32) as u32;
        if high == 0 {
            PyRandom::from_key(&[low])
        } else {
            PyRandom::from_key(&[low, high])
        }
    }

    fn from_genrand(seed: u32) -> Self {
        let mut state = Box::new([0u32; N]);
        state[0] = seed;
        for i in 1..N {
            let previous = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(previous ^ (previous >> 30))
                .wrapping_add(i as u32);
        }
        PyRandom {
            state,
            spare: Box::new([0; N]),
            outputs: Box::new([0; N]),
            draws: Box::new([0.0; N / 2]),
            index: N,
        }
    }

    /// `init_by_array(key)` of the reference implementation (and of CPython).
    fn from_key(key: &[u32]) -> Self {
        let mut random = PyRandom::from_genrand(19_650_218);
        let mt = &mut random.state;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let previous = mt[i - 1];
            mt[i] = (mt[i] ^ (previous ^ (previous >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let previous = mt[i - 1];
            mt[i] = (mt[i] ^ (previous ^ (previous >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        random
    }

    /// The next block ([`PyRandom::next_block`]), with AVX2 where the CPU has it (the
    /// loops run 8 words wide instead of 4; the results are the same).
    #[inline(never)]
    fn twist(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: `next_block_avx2` requires AVX2, which the CPU was just found to
            // have; it is plain safe code otherwise.
            unsafe { self.next_block_avx2() };
            return;
        }
        self.next_block();
    }

    /// [`PyRandom::next_block`] compiled for AVX2.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn next_block_avx2(&mut self) {
        self.next_block();
    }

    /// The next block: the state twisted (the reference's in-place loop `mt[k] =
    /// mt[(k + M) % N] ^ mix(mt[k], mt[(k + 1) % N])`), its outputs and draws.
    #[inline(always)]
    fn next_block(&mut self) {
        #[inline(always)]
        fn mix(upper: u32, lower: u32) -> u32 {
            let y = (upper & UPPER_MASK) | (lower & LOWER_MASK);
            (y >> 1) ^ (MATRIX_A & (y & 1).wrapping_neg())
        }
        // Written out of place, old words to new ones, in ranges of N - M words: the
        // in-place loop reads old words at and after `k` and new words 227 (N - M)
        // before it, so each range below reads old words and new words of an earlier
        // range only. Disjoint slices without index arithmetic: the compiler
        // vectorizes every range.
        const HALF: usize = N - M;
        let old: &[u32; N] = &self.state;
        let (low, high) = self.spare.split_at_mut(HALF);
        // k in 0..227: mt[k + M] is old
        for (((new, &word), &next), &far) in low
            .iter_mut()
            .zip(&old[..HALF])
            .zip(&old[1..=HALF])
            .zip(&old[M..])
        {
            *new = far ^ mix(word, next);
        }
        // k in 227..454: mt[k - 227] is new (the first range)
        let (middle, top) = high.split_at_mut(HALF);
        for (((new, &word), &next), &back) in middle
            .iter_mut()
            .zip(&old[HALF..2 * HALF])
            .zip(&old[HALF + 1..=2 * HALF])
            .zip(low.iter())
        {
            *new = back ^ mix(word, next);
        }
        // k in 454..623: mt[k - 227] is new (the second range)
        for (((new, &word), &next), &back) in top[..N - 1 - 2 * HALF]
            .iter_mut()
            .zip(&old[2 * HALF..N - 1])
            .zip(&old[2 * HALF + 1..])
            .zip(middle.iter())
        {
            *new = back ^ mix(word, next);
        }
        // k = 623 wraps: mt[0] and mt[M - 1] are new
        top[N - 1 - 2 * HALF] = middle[M - 1 - HALF] ^ mix(old[N - 1], low[0]);
        std::mem::swap(&mut self.state, &mut self.spare);
        self.temper_block();
        self.index = 0;
    }

    /// Computes the block's outputs and draws from its raw words (two passes: each
    /// vectorizes, one fused loop does not).
    #[inline(always)]
    fn temper_block(&mut self) {
        for (output, word) in self.outputs.iter_mut().zip(self.state.iter()) {
            *output = temper(*word);
        }
        for (draw, pair) in self.draws.iter_mut().zip(self.outputs.chunks_exact(2)) {
            *draw = to_draw(pair[0], pair[1]);
        }
    }

    /// The generator's whole state: the 624 words and the index of the next one (what
    /// [`PyRandom::from_state`] takes back; a Nexmark generator's checkpoint position
    /// holds it, so a restore does not redraw every earlier event).
    pub fn state(&self) -> (&[u32], usize) {
        (&self.state[..], self.index)
    }

    /// The generator whose [`PyRandom::state`] was `(words, index)`; `None` unless
    /// there are exactly 624 words and `index <= 624` (state read back from a
    /// checkpoint is checked, not trusted).
    pub fn from_state(words: &[u32], index: usize) -> Option<Self> {
        let state: Box<[u32; N]> = Box::new(<[u32; N]>::try_from(words).ok()?);
        if index > N {
            return None;
        }
        let mut random = PyRandom {
            state,
            spare: Box::new([0; N]),
            outputs: Box::new([0; N]),
            draws: Box::new([0.0; N / 2]),
            index,
        };
        random.temper_block();
        Some(random)
    }

    /// The next 32 random bits (`genrand_uint32`).
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        match self.outputs.get(self.index) {
            Some(&output) => {
                self.index += 1;
                output
            }
            None => {
                self.twist();
                self.index = 1;
                self.outputs[0]
            }
        }
    }

    /// Python's `random()`: a float in `[0, 1)` from 53 random bits.
    #[inline]
    pub fn random(&mut self) -> f64 {
        let index = self.index;
        if index % 2 == 0 {
            if let Some(&draw) = self.draws.get(index / 2) {
                self.index = index + 2;
                return draw;
            }
        }
        self.random_across()
    }

    /// `random()` at the end of a block or at an odd index.
    #[cold]
    fn random_across(&mut self) -> f64 {
        let a = self.next_u32();
        let b = self.next_u32();
        to_draw(a, b)
    }

    /// Advances the stream past `draws` calls of [`PyRandom::random`] without computing
    /// them (what a generator that does not build an event needs).
    #[inline]
    pub fn skip(&mut self, draws: usize) {
        let mut words = 2 * draws;
        loop {
            let left = N - self.index;
            if words <= left {
                self.index += words;
                return;
            }
            words -= left;
            self.twist();
        }
    }

    /// `int(random() * n)`: an integer in `[0, n)` as `gen_nexmark.py` draws it (not
    /// Python's `randrange`, which draws differently).
    #[inline]
    pub fn below(&mut self, n: i64) -> i64 {
        (self.random() * n as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPython's 100,000th `random()` of `Random(42)` (after 160 twists).
    const PYTHON_100000TH: f64 = 0.5832142839103495;

    #[test]
    fn a_long_run_matches_cpython() {
        // python3 -c "import random; r = random.Random(42); [r.random() for _ in range(99999)]; print(r.random())"
        let mut random = PyRandom::new(42);
        for _ in 0..99_999 {
            random.random();
        }
        assert_eq!(random.random(), PYTHON_100000TH);
    }

    #[test]
    fn a_saved_state_continues_the_same_stream() {
        let mut random = PyRandom::new(7);
        for _ in 0..1_000 {
            random.random();
        }
        let (words, index) = random.state();
        let words = words.to_vec();
        let mut copy = PyRandom::from_state(&words, index).unwrap();
        for _ in 0..1_000 {
            assert_eq!(copy.random(), random.random());
        }
        assert!(PyRandom::from_state(&words[1..], 0).is_none());
        assert!(PyRandom::from_state(&words, N + 1).is_none());
    }

    #[test]
    fn skipping_draws_is_drawing_them() {
        let mut drawn = PyRandom::new(11);
        let mut skipped = PyRandom::new(11);
        // steps that cross block ends (312 draws a block) in every way
        for step in [1, 2, 311, 312, 313, 5, 624, 1_000, 7] {
            for _ in 0..step {
                drawn.random();
            }
            skipped.skip(step);
            assert_eq!(drawn.state(), skipped.state(), "after a skip of {step}");
            assert_eq!(drawn.random(), skipped.random());
            skipped.next_u32();
            drawn.next_u32();
        }
        // an odd index (a single 32-bit draw) before a `random()` at a block's end
        let mut odd = PyRandom::new(3);
        odd.skip(311);
        odd.next_u32();
        let mut reference = PyRandom::new(3);
        for _ in 0..623 {
            reference.next_u32();
        }
        assert_eq!(odd.random(), reference.random());
    }

    #[test]
    fn matches_cpython() {
        // python3 -c 'import random; r = random.Random(42); print([r.random() for _ in range(3)])'
        let mut random = PyRandom::new(42);
        assert_eq!(random.random(), 0.6394267984578837);
        assert_eq!(random.random(), 0.025010755222666936);
        assert_eq!(random.random(), 0.27502931836911926);
        // python3 -c 'import random; print(random.Random(2**40 + 7).random())'
        assert_eq!(PyRandom::new((1 << 40) + 7).random(), 0.6137037779936511);
        // python3 -c 'import random; print(random.Random(0).random())'
        assert_eq!(PyRandom::new(0).random(), 0.8444218515250481);
    }
}
