//! The Nexmark generator: [`NexmarkModel`] (the seeded model), [`EventGenerator`] (its
//! events in order) and [`NexmarkGenerator`] (one table of it as a parallel, optionally
//! rate-limited eddy [`Source`]).
//!
//! The model is `gen_nexmark.py`'s (the Flink peer harness), which follows
//! nexmark/nexmark's and Apache Beam's generator, and the output is **byte-identical**
//! to it for the same `--events/--seed/--rate`: the random numbers come from
//! [`PyRandom`] (CPython's Mersenne Twister, bit for bit) drawn in the script's order,
//! floats give the same results (`round` half to even; prices `10^(6u)` as the C
//! library's `pow` gives them, see `price.rs`), so Flink's reference outputs on the
//! script's files are also references for eddy runs on generated input. The model:
//!
//! * event ids `0..N`; `id % 50`: `0` a [`Person`], `1..=3` an [`Auction`], `4..=49` a
//!   [`Bid`] (1:3:46); person and auction ids start at 1000 and follow the event id;
//! * auction sellers: 3/4 the newest person id rounded down to 100 (hot), else one of
//!   the 1000 most recent people (+10 lead); bids: 1/2 on the newest auction id rounded
//!   down to 100 (hot), else one of the 100 in flight (+10 lead); bidders 3/4 hot
//!   (newest person rounded down to 100, +1), else a recent person;
//! * category `10 + uniform(0..5)`; prices `round(10^(6u) · 100)`; reserve = initial
//!   bid + such a price; expiry up to twice the event time of 100 auctions later;
//! * channel/url: 1/2 one of 4 hot channels, else `channel-<i>` of a cache of 10,000;
//! * `extra`: lowercase padding to about 200 (person), 500 (auction), 100 (bid) bytes;
//! * `date_time` = 2015-07-15 00:00:00.000 UTC + `event_id / rate` seconds (truncated
//!   to the millisecond): event time advances by the configured rate, in order.
//!
//! Setting the model up draws 3 million numbers (1 MiB string pools, 10,000 URLs), so a
//! [`NexmarkModel`] is built once and shared (`Arc`) by every source and subtask.
//!
//! **Parallelism.** The draws of one event depend on all earlier draws (how many numbers
//! an event takes varies), so the stream cannot be split without running it. Subtask
//! `k` of `p` therefore runs the random stream over every event (for an event it does
//! not build, only the draws that decide how many numbers the event takes are
//! computed; the rest are skipped) but builds (allocates, formats) only its own
//! events — ids with `id % p == k` — of its own table. The union
//! of the subtasks' outputs is exactly the sequential output.
//!
//! **Rate limit.** With [`GeneratorConfig::throttle`], event `i` is due `i / rate`
//! seconds after the source's first poll, measured with the job's [`Clock`]; a poll
//! emits what is due and returns [`SourceStatus::IdleUntil`] the next event's time (it
//! never sleeps). Without it, events are produced as fast as the job takes them. A
//! source restored at event `r` paces from there (event `i` is due `(i - r) / rate`
//! seconds after its first poll): it does not burst to catch up on the time the job was
//! down.
//!
//! **Checkpoints.** A subtask's position is the next event id it looks at and the
//! random stream's state there (module `position`): a restored job emits exactly the
//! events after it, with the same or another parallelism.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_engine::clock::Clock;
use eddy_engine::prelude::*;

use super::model::{Auction, Bid, IngestTime, NexmarkTable, Person};
use super::position::{Earlier, GeneratorPosition, Resume};
use super::price::Prices;
use super::py_random::PyRandom;
use super::source::SourceProbe;
use super::text::Text;

/// The default rate of event time: 10 million events per second (the TPS of the
/// nexmark/nexmark suite, and `gen_nexmark.py`'s default).
pub const DEFAULT_EVENT_RATE: f64 = 10_000_000.0;
/// The event time of event 0: 2015-07-15 00:00:00.000 UTC (Beam's `BASE_TIME`).
pub const BASE_TIME_MS: i64 = 1_436_918_400_000;

const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: i64 = 5;
const PERSON_PROPORTION: u64 = 1;
const AUCTION_PROPORTION: u64 = 3;
const TOTAL_PROPORTION: u64 = 50;
const NUM_ACTIVE_PEOPLE: i64 = 1000;
const PERSON_ID_LEAD: i64 = 10;
const NUM_IN_FLIGHT_AUCTIONS: i64 = 100;
const AUCTION_ID_LEAD: i64 = 10;
const HOT_SELLERS_RATIO: i64 = 4;
const HOT_AUCTION_RATIO: i64 = 2;
const HOT_BIDDERS_RATIO: i64 = 4;
const HOT_ROUND: i64 = 100;
const AVG_PERSON_BYTES: i64 = 200;
const AVG_AUCTION_BYTES: i64 = 500;
const CHANNELS: usize = 10_000;
const POOL_BYTES: usize = 1 << 20;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
/// The draws of a person: name 2, e-mail 2 × 2, card 4, city and state 2, `extra` 2.
/// `next_extra` draws twice whenever the record is below the desired size by at least
/// 3 bytes (else its ± 20 % is 0 and it draws once, or not at all); a person is at
/// most 71 bytes before its padding (names ≤ 14, e-mail ≤ 15 — `next_string` of 7
/// and 5 takes 3..=6 and 3..=4 characters —, city ≤ 13), far below 200.
const PERSON_DRAWS: usize = 14;
/// The draws of an auction with a hot seller: seller 1, category 1, initial bid 1,
/// expiry 1, item name 2, description 2, reserve 1, `extra` 2 (at most 166 bytes before
/// the padding, far below 500: see [`PERSON_DRAWS`]); a cold seller draws once more.
const AUCTION_DRAWS: usize = 11;
/// The draws of a bid after its bidder: price 1, channel 2 (hot or not, then which),
/// `extra` 2 (size and offset).
const BID_DRAWS_AFTER_BIDDER: usize = 5;
/// Events in which 100 auctions are created (the expiry horizon).
const EVENTS_FOR_AUCTIONS: u64 =
    (NUM_IN_FLIGHT_AUCTIONS as u64 * TOTAL_PROPORTION) / AUCTION_PROPORTION;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeneratorConfig {
    /// Number of events (persons + auctions + bids).
    pub events: u64,
    /// Seed of the random numbers.
    pub seed: u64,
    /// Events per second of event time (`date_time` advances by `1 / event_rate` s per
    /// event); with `throttle`, also the rate at which the source emits them.
    pub event_rate: f64,
    /// Emit at `event_rate` events per second of processing time (else unlimited).
    pub throttle: bool,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            events: 0,
            seed: 42,
            event_rate: DEFAULT_EVENT_RATE,
            throttle: false,
        }
    }
}

impl GeneratorConfig {
    /// Checks that the rate is a positive, finite number.
    pub fn validate(&self) -> Result<(), String> {
        if self.event_rate.is_finite() && self.event_rate > 0.0 {
            Ok(())
        } else {
            Err(format!(
                "the rate must be a positive number of events per second, not {}",
                self.event_rate
            ))
        }
    }
}

/// Which table an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A [`Person`].
    Person,
    /// An [`Auction`].
    Auction,
    /// A [`Bid`].
    Bid,
}

impl EventKind {
    /// The kind of event `event_id` (`id % 50`: 0 person, 1..=3 auction, else bid).
    pub fn of(event_id: u64) -> EventKind {
        match event_id % TOTAL_PROPORTION {
            0 => EventKind::Person,
            1..=3 => EventKind::Auction,
            _ => EventKind::Bid,
        }
    }
}

/// One generated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new person.
    Person(Person),
    /// A new auction.
    Auction(Auction),
    /// A bid.
    Bid(Bid),
}

/// The seeded model: the configuration and the tables of its seed ([`Tables`]).
/// Immutable; share it with `Arc`.
pub struct NexmarkModel {
    config: GeneratorConfig,
    inter_event_delay_us: f64,
    tables: &'static Tables,
}

/// What setting a seed's model up draws (about 3 million numbers): the string pools,
/// the channel cache and the random stream's state after them. They depend on the seed
/// only, so they are built **once per seed and process** and kept for the rest of it
/// (about 3.3 MB per seed, never freed): generated bids borrow their `channel`, `url`
/// and `extra` from them ([`Text::Static`]) instead of allocating copies.
struct Tables {
    extra_pool: String,
    string_pool: String,
    hot_channels: Vec<(String, String)>,
    channels: Vec<(String, String)>,
    random_after_setup: PyRandom,
    /// `round(10^(6u) · 100)` of a draw `u` (`gen_nexmark.py`'s `next_price`). The
    /// draw and the price are apart so that an event that is skipped draws `u`
    /// without computing the price.
    prices: Prices,
}

/// The tables of every seed set up so far in this process.
static TABLES: std::sync::OnceLock<std::sync::Mutex<Vec<(u64, &'static Tables)>>> =
    std::sync::OnceLock::new();

impl Tables {
    /// The tables of `seed`, set up on first use (the lock is taken once per model,
    /// never per event).
    fn of_seed(seed: u64) -> &'static Tables {
        let cache = TABLES.get_or_init(Default::default);
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, tables)) = cache.iter().find(|(cached, _)| *cached == seed) {
            return tables;
        }
        let tables: &'static Tables = Box::leak(Box::new(Tables::set_up(seed)));
        cache.push((seed, tables));
        tables
    }

    fn set_up(seed: u64) -> Tables {
        let mut random = PyRandom::new(seed);
        const LETTERS: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";
        let ascii = |bytes: Vec<u8>| String::from_utf8(bytes).expect("ASCII letters");
        let extra_pool = ascii(
            (0..POOL_BYTES)
                .map(|_| LETTERS[random.below(26) as usize])
                .collect(),
        );
        let string_pool = ascii(
            (0..POOL_BYTES)
                .map(|_| {
                    if random.random() < 1.0 / 13.0 {
                        b' '
                    } else {
                        LETTERS[random.below(26) as usize]
                    }
                })
                .collect(),
        );
        let string_pool_underscores = string_pool.replace(' ', "_");
        let hot_urls: Vec<String> = (0..HOT_CHANNELS.len())
            .map(|_| base_url(&mut random, &string_pool_underscores))
            .collect();
        let channels = (0..CHANNELS)
            .map(|i| {
                let mut url = base_url(&mut random, &string_pool_underscores);
                if random.below(10) > 0 {
                    url.push_str(&format!("&channel_id={}", int32_reverse(i as u32)));
                }
                (format!("channel-{i}"), url)
            })
            .collect();
        let hot_channels = HOT_CHANNELS
            .iter()
            .zip(hot_urls)
            .map(|(channel, url)| (channel.to_string(), url))
            .collect();
        // `ascii_slice` relies on it
        assert!(extra_pool.is_ascii(), "the padding pool is ASCII letters");
        Tables {
            extra_pool,
            string_pool,
            hot_channels,
            channels,
            random_after_setup: random,
            prices: Prices::new(),
        }
    }
}

impl std::fmt::Debug for NexmarkModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexmarkModel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `pool[range]` of an ASCII pool, without reading the pool: `str` slicing checks
/// that both ends are char boundaries by loading their bytes, and for a random offset
/// into a 1 MiB pool that load is a cache miss per bid (a quarter of the generator's
/// time in a profile); with ASCII every offset is a boundary, so only the bounds are
/// checked.
fn ascii_slice(pool: &str, range: std::ops::Range<usize>) -> &str {
    debug_assert!(pool.len() < 4096 || pool.as_bytes()[..4096].is_ascii());
    let bytes = &pool.as_bytes()[range];
    // SAFETY: the pools are ASCII (built from `LETTERS` in `Tables::set_up`, which
    // asserts it), and every sub-slice of ASCII bytes is valid UTF-8.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// A random string as `gen_nexmark.py`'s `next_string`: a slice of 3..`max_length`
/// characters of `pool`, trimmed.
fn next_string<'p>(random: &mut PyRandom, pool: &'p str, max_length: i64) -> &'p str {
    let length = 3 + random.below(max_length - 3);
    let offset = random.below(pool.len() as i64 - length) as usize;
    pool[offset..offset + length as usize].trim_matches(' ')
}

/// `extra` padding that brings a record of `current_size` bytes to about
/// `desired_average` (± 20 %), as `gen_nexmark.py`'s `next_extra`.
fn next_extra<'p>(
    random: &mut PyRandom,
    pool: &'p str,
    current_size: i64,
    desired_average: i64,
) -> &'p str {
    if current_size > desired_average {
        return "";
    }
    let average = desired_average - current_size;
    let delta = (average as f64 * 0.2).round_ties_even() as i64;
    let size = average - delta
        + if delta == 0 {
            0
        } else {
            random.below(2 * delta)
        };
    let offset = random.below(pool.len() as i64 - size) as usize;
    &pool[offset..offset + size as usize]
}

fn base_url(random: &mut PyRandom, pool: &str) -> String {
    let a = next_string(random, pool, 5);
    let b = next_string(random, pool, 5);
    let c = next_string(random, pool, 5);
    format!("https://www.nexmark.com/{a}/{b}/{c}/item.htm?query=1")
}

/// Java's `Integer.reverse(i)` as a non-negative number (`abs`).
fn int32_reverse(i: u32) -> u64 {
    u64::from((i.reverse_bits() as i32).unsigned_abs())
}

impl NexmarkModel {
    /// The model of `config` (its seed's tables are set up on the first model of that
    /// seed in the process: about 3 million random draws).
    pub fn new(config: GeneratorConfig) -> Result<Arc<NexmarkModel>, String> {
        config.validate()?;
        Ok(Arc::new(NexmarkModel {
            config,
            inter_event_delay_us: 1_000_000.0 / config.event_rate,
            tables: Tables::of_seed(config.seed),
        }))
    }

    /// The configuration the model was built for.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// The event time of event `event_id`, ms since the epoch.
    pub fn timestamp_ms(&self, event_id: u64) -> i64 {
        BASE_TIME_MS + (event_id as f64 * self.inter_event_delay_us) as i64 / 1000
    }

    /// The events from the first, in order.
    pub fn events(self: &Arc<Self>) -> EventGenerator {
        EventGenerator {
            random: self.tables.random_after_setup.clone(),
            model: Arc::clone(self),
            next_event_id: 0,
        }
    }

    /// The events from `next_event_id` on, `random` being the random stream's state
    /// before that event (as a generator there had it).
    fn events_at(self: &Arc<Self>, next_event_id: u64, random: PyRandom) -> EventGenerator {
        EventGenerator {
            random,
            model: Arc::clone(self),
            next_event_id,
        }
    }
}

/// The model's events in order (an iterator of [`Event`]). [`EventGenerator::skip`]
/// draws an event's random numbers without building it.
#[derive(Debug, Clone)]
pub struct EventGenerator {
    model: Arc<NexmarkModel>,
    random: PyRandom,
    next_event_id: u64,
}

impl EventGenerator {
    /// The random stream's state before the next event (see [`PyRandom::state`]).
    fn random_state(&self) -> (&[u32], usize) {
        self.random.state()
    }

    /// The id of the next event (`events` once all are generated).
    pub fn next_event_id(&self) -> u64 {
        self.next_event_id
    }

    /// Whether every event has been generated.
    pub fn is_done(&self) -> bool {
        self.next_event_id >= self.model.config.events
    }

    /// Advances past the next event without building it: only the draws that decide
    /// how many numbers the event takes are computed, the others are skipped
    /// ([`PyRandom::skip`]).
    pub fn skip(&mut self) {
        if self.is_done() {
            return;
        }
        let random = &mut self.random;
        match EventKind::of(self.next_event_id) {
            EventKind::Person => random.skip(PERSON_DRAWS),
            EventKind::Auction => {
                // a cold seller is a random person: one draw more
                let hot_seller = random.below(HOT_SELLERS_RATIO) > 0;
                random.skip(AUCTION_DRAWS - 1 + usize::from(!hot_seller));
            }
            EventKind::Bid => {
                // a cold auction or bidder is drawn: one draw more each
                let hot_auction = random.below(HOT_AUCTION_RATIO) > 0;
                random.skip(usize::from(!hot_auction));
                let hot_bidder = random.below(HOT_BIDDERS_RATIO) > 0;
                random.skip(usize::from(!hot_bidder) + BID_DRAWS_AFTER_BIDDER);
            }
        }
        self.next_event_id += 1;
    }

    /// Draws the next event; builds it only if `build`.
    fn step(&mut self, build: bool) -> Option<Event> {
        match EventKind::of(self.next_event_id) {
            EventKind::Person => self.next_person(build).map(Event::Person),
            EventKind::Auction => self.next_auction(build).map(Event::Auction),
            EventKind::Bid => self.next_bid(build).map(Event::Bid),
        }
    }

    /// The newest person id (base 0) at event `event_id`: one person per 50 events.
    fn last_person(event_id: u64) -> i64 {
        (event_id / TOTAL_PROPORTION) as i64
    }

    /// One of the most recent people (base 0), as `gen_nexmark.py`'s `next_person_id`.
    fn random_person(random: &mut PyRandom, last_person: i64) -> i64 {
        let people = last_person + 1;
        let active = people.min(NUM_ACTIVE_PEOPLE);
        people - active + random.below(active + PERSON_ID_LEAD)
    }

    /// Draws the next event, a person; builds it only if `build`. Always
    /// [`PERSON_DRAWS`] draws.
    fn next_person(&mut self, build: bool) -> Option<Person> {
        let event_id = self.next_event_id;
        debug_assert_eq!(EventKind::of(event_id), EventKind::Person);
        self.next_event_id += 1;
        let tables: &'static Tables = self.model.tables;
        let random = &mut self.random;
        let first = FIRST_NAMES[random.below(11) as usize];
        let last = LAST_NAMES[random.below(9) as usize];
        let email_user = next_string(random, &tables.string_pool, 7);
        let email_domain = next_string(random, &tables.string_pool, 5);
        let card: [i64; 4] = std::array::from_fn(|_| random.below(10_000));
        let city = US_CITIES[random.below(10) as usize];
        let state = US_STATES[random.below(6) as usize];
        let name_length = first.len() + 1 + last.len();
        let email_length = email_user.len() + 1 + email_domain.len() + 4;
        let size = 8 + name_length + email_length + 19 + city.len() + state.len();
        let extra = next_extra(random, &tables.extra_pool, size as i64, AVG_PERSON_BYTES);
        build.then(|| Person {
            id: Self::last_person(event_id) + FIRST_PERSON_ID,
            name: format!("{first} {last}"),
            email_address: format!("{email_user}@{email_domain}.com"),
            credit_card: format!(
                "{:04} {:04} {:04} {:04}",
                card[0], card[1], card[2], card[3]
            ),
            city: city.to_string(),
            state: state.to_string(),
            date_time: self.model.timestamp_ms(event_id),
            extra: extra.to_string(),
        })
    }

    /// Draws the next event, an auction; builds it only if `build`.
    /// [`AUCTION_DRAWS`] draws, one more for a cold seller.
    fn next_auction(&mut self, build: bool) -> Option<Auction> {
        let event_id = self.next_event_id;
        debug_assert_eq!(EventKind::of(event_id), EventKind::Auction);
        self.next_event_id += 1;
        let model: &NexmarkModel = &self.model;
        let tables: &'static Tables = model.tables;
        let random = &mut self.random;
        let timestamp = model.timestamp_ms(event_id);
        let epoch = (event_id / TOTAL_PROPORTION) as i64;
        let offset = event_id % TOTAL_PROPORTION;
        let last_person = Self::last_person(event_id);
        let id = epoch * AUCTION_PROPORTION as i64 + (offset - PERSON_PROPORTION) as i64;
        let seller = if random.below(HOT_SELLERS_RATIO) > 0 {
            (last_person / HOT_ROUND) * HOT_ROUND
        } else {
            Self::random_person(random, last_person)
        };
        let category = FIRST_CATEGORY_ID + random.below(NUM_CATEGORIES);
        let initial_bid_draw = random.random();
        let horizon = model.timestamp_ms(event_id + EVENTS_FOR_AUCTIONS) - timestamp;
        let expires = timestamp + 1 + random.below((horizon * 2).max(1));
        let item_name = next_string(random, &tables.string_pool, 20);
        let description = next_string(random, &tables.string_pool, 100);
        let reserve_draw = random.random();
        let size = 8 + item_name.len() + description.len() + 40;
        let extra = next_extra(random, &tables.extra_pool, size as i64, AVG_AUCTION_BYTES);
        build.then(|| {
            let initial_bid = tables.prices.price(initial_bid_draw);
            Auction {
                reserve: initial_bid + tables.prices.price(reserve_draw),
                id: id + FIRST_AUCTION_ID,
                item_name: item_name.to_string(),
                description: description.to_string(),
                initial_bid,
                date_time: timestamp,
                expires,
                seller: seller + FIRST_PERSON_ID,
                category,
                extra: extra.to_string(),
            }
        })
    }

    /// Draws the next event, a bid; builds it only if `build` (without allocating: its
    /// strings borrow the seed's tables).
    fn next_bid(&mut self, build: bool) -> Option<Bid> {
        let event_id = self.next_event_id;
        debug_assert_eq!(EventKind::of(event_id), EventKind::Bid);
        self.next_event_id += 1;
        let tables: &'static Tables = self.model.tables;
        let random = &mut self.random;
        let epoch = (event_id / TOTAL_PROPORTION) as i64;
        let last_person = epoch;
        // the newest auction id (base 0) at a bid event
        let last_auction = epoch * AUCTION_PROPORTION as i64 + 2;
        let auction = if random.below(HOT_AUCTION_RATIO) > 0 {
            (last_auction / HOT_ROUND) * HOT_ROUND
        } else {
            let low = (last_auction - NUM_IN_FLIGHT_AUCTIONS).max(0);
            low + random.below(last_auction - low + 1 + AUCTION_ID_LEAD)
        };
        let bidder = if random.below(HOT_BIDDERS_RATIO) > 0 {
            (last_person / HOT_ROUND) * HOT_ROUND + 1
        } else {
            Self::random_person(random, last_person)
        };
        // from here on always BID_DRAWS_AFTER_BIDDER draws
        let price_draw = random.random();
        let (channel, url) = if random.random() < 0.5 {
            &tables.hot_channels[random.below(4) as usize]
        } else {
            &tables.channels[random.below(CHANNELS as i64) as usize]
        };
        // current size 32, desired average 100: 68 ± 14 characters
        let size = 54 + random.below(28);
        let offset = random.below(POOL_BYTES as i64 - size) as usize;
        build.then(|| Bid {
            auction: auction + FIRST_AUCTION_ID,
            bidder: bidder + FIRST_PERSON_ID,
            price: tables.prices.price(price_draw),
            channel: Text::Static(channel),
            url: Text::Static(url),
            date_time: self.model.timestamp_ms(event_id),
            extra: Text::Static(ascii_slice(
                &tables.extra_pool,
                offset..offset + size as usize,
            )),
            ingest: IngestTime::NONE,
        })
    }
}

impl Iterator for EventGenerator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.is_done() {
            None
        } else {
            self.step(true)
        }
    }
}

/// A Nexmark table the generator produces.
pub trait GeneratedTable: NexmarkTable + Clone {
    /// Which events are of this table.
    const KIND: EventKind;

    /// The record of an event of kind [`GeneratedTable::KIND`].
    fn from_event(event: Event) -> Option<Self>;

    /// Builds the next event of `events`, which must be of kind
    /// [`GeneratedTable::KIND`] and not past the end (the same record as
    /// `events.next()` and [`GeneratedTable::from_event`], without the [`Event`]).
    fn build_next(events: &mut EventGenerator) -> Self;
}

impl GeneratedTable for Person {
    const KIND: EventKind = EventKind::Person;

    fn from_event(event: Event) -> Option<Self> {
        match event {
            Event::Person(person) => Some(person),
            _ => None,
        }
    }

    fn build_next(events: &mut EventGenerator) -> Self {
        let record = events.next_person(true);
        record.expect("a built event")
    }
}

impl GeneratedTable for Auction {
    const KIND: EventKind = EventKind::Auction;

    fn from_event(event: Event) -> Option<Self> {
        match event {
            Event::Auction(auction) => Some(auction),
            _ => None,
        }
    }

    fn build_next(events: &mut EventGenerator) -> Self {
        let record = events.next_auction(true);
        record.expect("a built event")
    }
}

impl GeneratedTable for Bid {
    const KIND: EventKind = EventKind::Bid;

    fn from_event(event: Event) -> Option<Self> {
        match event {
            Event::Bid(bid) => Some(bid),
            _ => None,
        }
    }

    fn build_next(events: &mut EventGenerator) -> Self {
        let record = events.next_bid(true);
        record.expect("a built event")
    }
}

/// One table of the generator as a parallel, bounded source (see the module docs):
/// subtask `k` of `p` emits the events of table `T` whose id is `k` modulo `p`, in
/// event-time order, each with its `date_time` as timestamp.
///
/// **Checkpoints.** The source is replayable: its position is the next event id it
/// looks at and the random stream's state there (see the module docs), so a
/// job restored from a checkpoint or savepoint emits exactly the events after it, also
/// with another parallelism. A throttled source restarts its pacing at the restored
/// event: it does not burst to catch up on the time the job was down.
pub struct NexmarkGenerator<T> {
    model: Arc<NexmarkModel>,
    clock: Arc<dyn Clock>,
    events: Option<EventGenerator>,
    subtask: u64,
    parallelism: u64,
    /// When pacing started (throttled runs: set by the first poll).
    started: Option<Instant>,
    /// The event due at `started` (0, or the restored position).
    paced_from: u64,
    /// Where to start when opened (set by a restore).
    resume: Option<Resume>,
    /// Old positions of another parallelism still to respect (after a rescaling
    /// restore, until this subtask passes them).
    earlier: Option<Earlier>,
    probe: Option<SourceProbe>,
    _records: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for NexmarkGenerator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexmarkGenerator")
            .field("config", &self.model.config)
            .field("subtask", &self.subtask)
            .field("parallelism", &self.parallelism)
            .finish_non_exhaustive()
    }
}

/// A clone is an unopened source over the same model.
impl<T> Clone for NexmarkGenerator<T> {
    fn clone(&self) -> Self {
        NexmarkGenerator {
            model: Arc::clone(&self.model),
            clock: Arc::clone(&self.clock),
            events: None,
            subtask: 0,
            parallelism: 1,
            started: None,
            paced_from: 0,
            resume: None,
            earlier: None,
            probe: self.probe.clone(),
            _records: PhantomData,
        }
    }
}

impl<T: GeneratedTable> NexmarkGenerator<T> {
    /// A source of `T`'s events of `model`; `clock` (the job's,
    /// [`JobConfig::clock`]) paces a throttled run.
    pub fn new(model: Arc<NexmarkModel>, clock: Arc<dyn Clock>) -> Self {
        NexmarkGenerator {
            model,
            clock,
            events: None,
            subtask: 0,
            parallelism: 1,
            started: None,
            paced_from: 0,
            resume: None,
            earlier: None,
            probe: None,
            _records: PhantomData,
        }
    }

    /// Counts the records emitted into `probe` and stamps them with when they entered
    /// the source: with a rate limit, the instant each event was due (so a poll that
    /// comes late counts as latency, as it would for events from outside); without
    /// one, the instant of the poll that emitted them (one clock read per poll, not per
    /// record: a record is stamped at most one poll's generation time, about
    /// `buffer.size` × 60 ns, before it is built, so its latency errs long, never
    /// short).
    pub fn with_probe(mut self, probe: SourceProbe) -> Self {
        self.probe = Some(probe);
        self
    }

    /// How many events are due by now (all of them when not throttled).
    fn due_events(&mut self) -> u64 {
        let config = self.model.config;
        if !config.throttle {
            return config.events;
        }
        let now = self.clock.now();
        let started = *self.started.get_or_insert(now);
        let elapsed = now.saturating_duration_since(started);
        let due = self.paced_from + (elapsed.as_secs_f64() * config.event_rate) as u64 + 1;
        due.min(config.events)
    }

    /// When event `event_id` is due, relative to the start of pacing (throttled runs;
    /// after a restore, pacing starts at the restored event).
    pub fn due_after(&self, event_id: u64) -> Duration {
        let paced = event_id.saturating_sub(self.paced_from);
        Duration::from_secs_f64(paced as f64 / self.model.config.event_rate)
    }
}

impl<T: GeneratedTable> Source<T> for NexmarkGenerator<T> {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        self.subtask = subtask.index as u64;
        self.parallelism = subtask.parallelism.max(1) as u64;
        self.events = match self.resume.take() {
            None => Some(self.model.events()),
            Some(resume) => {
                self.paced_from = resume.next_event;
                self.earlier = resume.earlier;
                resume
                    .random
                    .map(|random| self.model.events_at(resume.next_event, random))
            }
        };
        Ok(())
    }

    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<SourceStatus, ConnectorError> {
        let due = self.due_events();
        let stamp = self.probe.as_ref().map(|probe| probe.clock.now());
        let before = out.remaining();
        let status = self.generate(due, stamp, out);
        if let Some(probe) = &self.probe {
            probe.count(before - out.remaining());
        }
        Ok(status)
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        self.events = None;
        Ok(())
    }

    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, ConnectorError> {
        let config = self.model.config;
        let (next_event, random) = match &self.events {
            Some(events) => {
                let (words, index) = events.random_state();
                (events.next_event_id(), Some((words.to_vec(), index as u32)))
            }
            None => (config.events, None),
        };
        let earlier = self.earlier.clone().filter(|e| next_event < e.end());
        let position = GeneratorPosition {
            seed: config.seed,
            events: config.events,
            event_rate: config.event_rate,
            next_event,
            random,
            earlier,
        };
        position.encode().map(Some)
    }

    fn restore_position(
        &mut self,
        subtask: &SubtaskInfo,
        positions: &[(u32, &[u8])],
        old_parallelism: u32,
    ) -> Result<(), ConnectorError> {
        let resume =
            GeneratorPosition::resume(&self.model.config, subtask, positions, old_parallelism)?;
        self.resume = Some(resume);
        Ok(())
    }
}

impl<T: GeneratedTable> NexmarkGenerator<T> {
    /// Emits this subtask's events below `due`, up to `out.remaining()`, each stamped
    /// with `stamp` if given.
    fn generate(
        &mut self,
        due: u64,
        stamp: Option<Instant>,
        out: &mut SourceOutput<'_, T>,
    ) -> SourceStatus {
        let (subtask, parallelism) = (self.subtask, self.parallelism);
        let (started, rate, paced_from) =
            (self.started, self.model.config.event_rate, self.paced_from);
        let due_at = |started: Instant, event_id: u64| {
            started + Duration::from_secs_f64(event_id.saturating_sub(paced_from) as f64 / rate)
        };
        let Some(events) = self.events.as_mut() else {
            return SourceStatus::Finished;
        };
        if let Some(earlier) = &self.earlier {
            if events.next_event_id() >= earlier.end() {
                self.earlier = None;
            }
        }
        let earlier = self.earlier.as_ref();
        // `event_id % parallelism`, kept up to date instead of divided per event
        let mut residue = events.next_event_id() % parallelism;
        while out.remaining() > 0 {
            if events.is_done() {
                self.events = None;
                return SourceStatus::Finished;
            }
            let event_id = events.next_event_id();
            if event_id >= due {
                // Sleep until the next event is due (no later: the rate must hold).
                return match started {
                    Some(started) => SourceStatus::IdleUntil(due_at(started, event_id)),
                    None => SourceStatus::Idle,
                };
            }
            let own = residue == subtask
                && EventKind::of(event_id) == T::KIND
                && !earlier.is_some_and(|earlier| earlier.covers(event_id));
            residue += 1;
            if residue == parallelism {
                residue = 0;
            }
            if !own {
                events.skip();
                continue;
            }
            let mut record = T::build_next(events);
            if let Some(stamp) = stamp {
                // throttled: the moment the event was due (a late poll is latency
                // too); otherwise the poll's
                record.set_ingest(match started {
                    Some(started) => due_at(started, event_id),
                    None => stamp,
                });
            }
            out.emit(record);
        }
        SourceStatus::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_engine::clock::ManualClock;

    fn model(events: u64, throttle: bool) -> Arc<NexmarkModel> {
        NexmarkModel::new(GeneratorConfig {
            events,
            seed: 42,
            event_rate: 203.0,
            throttle,
        })
        .unwrap()
    }

    fn model_time(event_id: u64) -> i64 {
        model(1, false).timestamp_ms(event_id)
    }

    fn poll<T: GeneratedTable>(
        source: &mut NexmarkGenerator<T>,
        limit: usize,
    ) -> (SourceStatus, Vec<T>) {
        let mut batch = Batch::new();
        let mut out = SourceOutput::new(&mut batch, limit);
        let status = source.poll_next(&mut out).unwrap();
        (status, batch.drain_values().collect())
    }

    fn open<T: GeneratedTable>(source: &mut NexmarkGenerator<T>, index: usize, parallelism: usize) {
        let info = SubtaskInfo {
            job: "t".into(),
            operator: "gen".into(),
            index,
            parallelism,
        };
        source.open(&info).unwrap();
    }

    #[test]
    fn subtasks_split_the_events_and_together_produce_all() {
        let model = model(2_000, false);
        let sequential: Vec<Bid> = model.events().filter_map(Bid::from_event).collect();
        assert_eq!(sequential.len(), 1_840);
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let mut union = Vec::new();
        for index in 0..3 {
            let mut source = NexmarkGenerator::<Bid>::new(Arc::clone(&model), clock.clone());
            open(&mut source, index, 3);
            loop {
                let (status, records) = poll(&mut source, 100);
                union.extend(records);
                if status == SourceStatus::Finished {
                    break;
                }
            }
        }
        union.sort_by_key(|bid| (bid.date_time, bid.extra.clone()));
        let mut expected = sequential;
        expected.sort_by_key(|bid| (bid.date_time, bid.extra.clone()));
        assert_eq!(union, expected);
    }

    fn info(index: usize, parallelism: usize) -> SubtaskInfo {
        SubtaskInfo {
            job: "t".into(),
            operator: "gen".into(),
            index,
            parallelism,
        }
    }

    /// Positions by subtask, as a checkpoint holds them.
    type Positions = Vec<(u32, Vec<u8>)>;

    /// Runs `parallelism` subtasks, subtask `k` for `stops[k]` polls of 7 records (all
    /// of it when `None`), and returns what they emitted and their positions.
    fn run_and_snapshot(
        model: &Arc<NexmarkModel>,
        restore: Option<(&Positions, u32)>,
        parallelism: usize,
        stops: &[Option<usize>],
    ) -> Result<(Vec<Bid>, Positions), ConnectorError> {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let (mut emitted, mut positions) = (Vec::new(), Vec::new());
        for (index, stop) in stops.iter().enumerate().take(parallelism) {
            let mut source = NexmarkGenerator::<Bid>::new(Arc::clone(model), clock.clone());
            if let Some((old, old_parallelism)) = restore {
                let old: Vec<(u32, &[u8])> = old.iter().map(|(i, b)| (*i, b.as_slice())).collect();
                source.restore_position(&info(index, parallelism), &old, old_parallelism)?;
            }
            source.open(&info(index, parallelism))?;
            let mut polls = 0;
            loop {
                if *stop == Some(polls) {
                    let position = source.snapshot_position()?.expect("a position");
                    positions.push((index as u32, position));
                    break;
                }
                let (status, records) = poll(&mut source, 7);
                emitted.extend(records);
                polls += 1;
                if status == SourceStatus::Finished {
                    break;
                }
            }
        }
        Ok((emitted, positions))
    }

    fn sorted(mut bids: Vec<Bid>) -> Vec<Bid> {
        bids.sort_by_key(|bid| (bid.date_time, bid.auction, bid.bidder, bid.extra.clone()));
        bids
    }

    #[test]
    fn a_restored_generator_emits_exactly_the_events_after_its_position() {
        let model = model(3_000, false);
        let expected = sorted(model.events().filter_map(Bid::from_event).collect());
        // (old parallelism, where each old subtask stops, new parallelism)
        let cases: &[(usize, &[Option<usize>], usize)] = &[
            (1, &[Some(0)], 1),
            (1, &[Some(40)], 1),
            (3, &[Some(5), Some(30), Some(17)], 3),
            (3, &[Some(5), Some(30), Some(17)], 2),
            (2, &[Some(50), Some(3)], 3),
            (2, &[Some(11), Some(60)], 1),
            (1, &[Some(100)], 4),
        ];
        for (old_parallelism, stops, parallelism) in cases {
            let (mut emitted, positions) =
                run_and_snapshot(&model, None, *old_parallelism, stops).unwrap();
            let restore = Some((&positions, *old_parallelism as u32));
            let (rest, _) =
                run_and_snapshot(&model, restore, *parallelism, &vec![None; *parallelism]).unwrap();
            emitted.extend(rest);
            assert_eq!(
                sorted(emitted),
                expected,
                "{old_parallelism} → {parallelism}, stops {stops:?}"
            );
        }
    }

    #[test]
    fn a_checkpoint_soon_after_a_rescaling_restore_keeps_the_old_positions() {
        let model = model(3_000, false);
        let expected = sorted(model.events().filter_map(Bid::from_event).collect());
        // 2 subtasks far apart, restored with 3; a checkpoint at once (before the
        // subtasks pass the old positions) carries them.
        let (mut emitted, first) = run_and_snapshot(&model, None, 2, &[Some(2), Some(60)]).unwrap();
        let (more, second) =
            run_and_snapshot(&model, Some((&first, 2)), 3, &[Some(1), Some(0), Some(2)]).unwrap();
        emitted.extend(more);
        // another parallelism now: refused, naming the way out
        let error = run_and_snapshot(&model, Some((&second, 3)), 2, &[None, None]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("restore this checkpoint with parallelism 3"),
            "{error}"
        );
        // the same parallelism: exactly the rest
        let (rest, _) =
            run_and_snapshot(&model, Some((&second, 3)), 3, &[None, None, None]).unwrap();
        emitted.extend(rest);
        assert_eq!(sorted(emitted), expected);
    }

    #[test]
    fn a_position_of_another_model_or_a_damaged_one_is_refused() {
        let (_, positions) = run_and_snapshot(&model(3_000, false), None, 1, &[Some(3)]).unwrap();
        let other = NexmarkModel::new(GeneratorConfig {
            events: 3_000,
            seed: 43,
            event_rate: 203.0,
            throttle: false,
        })
        .unwrap();
        let error = run_and_snapshot(&other, Some((&positions, 1)), 1, &[None]).unwrap_err();
        assert!(error.to_string().contains("seed=42"), "{error}");
        let damaged = vec![(0, positions[0].1[..20].to_vec())];
        assert!(run_and_snapshot(&model(3_000, false), Some((&damaged, 1)), 1, &[None]).is_err());
        let missing: Positions = Vec::new();
        let error =
            run_and_snapshot(&model(3_000, false), Some((&missing, 1)), 1, &[None]).unwrap_err();
        assert!(
            error.to_string().contains("expected one for each"),
            "{error}"
        );
    }

    #[test]
    fn a_restored_throttled_generator_paces_from_its_position_without_a_burst() {
        let model = model(1_000, true);
        let clock = ManualClock::new();
        let mut source = NexmarkGenerator::<Bid>::new(Arc::clone(&model), Arc::new(clock.clone()));
        open(&mut source, 0, 1);
        poll(&mut source, 100);
        clock.advance(Duration::from_secs_f64(99.5 / 203.0));
        let (_, bids) = poll(&mut source, 1_000);
        assert_eq!(bids.len(), 100 - 2 - 3 * 2); // events 0..100 less persons, auctions
        let position = source.snapshot_position().unwrap().unwrap();
        // the job was down for an hour: the restored source starts pacing again at
        // event 100, which is due at once, and 101 a 1/203 s later
        clock.advance(Duration::from_secs(3_600));
        let mut restored = NexmarkGenerator::<Bid>::new(model, Arc::new(clock.clone()));
        restored
            .restore_position(&info(0, 1), &[(0, position.as_slice())], 1)
            .unwrap();
        open(&mut restored, 0, 1);
        let start = clock.now();
        let (status, bids) = poll(&mut restored, 1_000);
        assert_eq!(bids, vec![]); // event 100 is a person
        assert_eq!(
            status,
            SourceStatus::IdleUntil(start + Duration::from_secs_f64(1.0 / 203.0))
        );
        clock.advance(Duration::from_secs_f64(10.5 / 203.0));
        let (status, bids) = poll(&mut restored, 1_000);
        // events 101..=110: 3 auctions, 7 bids
        assert_eq!(bids.len(), 7);
        assert_eq!(bids[0].date_time, model_time(104));
        assert_eq!(
            status,
            SourceStatus::IdleUntil(start + Duration::from_secs_f64(11.0 / 203.0))
        );
    }

    #[test]
    fn a_throttled_source_emits_what_is_due_and_is_idle_until_then() {
        let model = model(1_000, true);
        let clock = ManualClock::new();
        let mut source = NexmarkGenerator::<Person>::new(model, Arc::new(clock.clone()));
        open(&mut source, 0, 1);
        let start = clock.now();
        let due = |event: u64| {
            SourceStatus::IdleUntil(start + Duration::from_secs_f64(event as f64 / 203.0))
        };
        // event 0 (a person) is due at once; then it sleeps until event 1 is due
        let (status, persons) = poll(&mut source, 100);
        assert_eq!((status, persons.len()), (due(1), 1));
        // event 50, the next person, is due at 50 / 203 s
        clock.advance(Duration::from_secs_f64(49.5 / 203.0));
        assert_eq!(poll(&mut source, 100), (due(50), vec![]));
        clock.advance(Duration::from_secs_f64(1.0 / 203.0));
        let (status, persons) = poll(&mut source, 100);
        assert_eq!((status, persons.len()), (due(51), 1));
        assert_eq!(persons[0].id, 1001);
        clock.advance(Duration::from_secs(10));
        let (status, persons) = poll(&mut source, 100);
        assert_eq!((status, persons.len()), (SourceStatus::Finished, 18));
    }

    #[test]
    fn proportions_and_ranges() {
        let model = NexmarkModel::new(GeneratorConfig {
            events: 50_000,
            seed: 7,
            ..GeneratorConfig::default()
        })
        .unwrap();
        let (mut persons, mut auctions, mut bids) = (0, 0, 0);
        let (mut hot_bids, mut hot_channels) = (0, 0);
        for event in model.events() {
            match event {
                Event::Person(person) => {
                    assert_eq!(person.id, 1000 + persons);
                    persons += 1;
                }
                Event::Auction(auction) => {
                    assert!((10..15).contains(&auction.category));
                    assert!(auction.reserve > auction.initial_bid);
                    assert!(auction.expires > auction.date_time);
                    assert!(auction.seller < 1000 + persons + PERSON_ID_LEAD);
                    auctions += 1;
                }
                Event::Bid(bid) => {
                    assert!((1..=100_000_000).contains(&bid.price));
                    hot_bids += i64::from(bid.auction % 100 == 0);
                    hot_channels += i64::from(!bid.channel.starts_with("channel-"));
                    assert!((54..82).contains(&bid.extra.len()));
                    bids += 1;
                }
            }
        }
        assert_eq!((persons, auctions, bids), (1_000, 3_000, 46_000));
        // half the bids go to a hot auction (plus the random ones that hit a multiple
        // of 100), half come through a hot channel
        assert!((23_000..25_000).contains(&hot_bids), "{hot_bids}");
        assert!((22_500..23_500).contains(&hot_channels), "{hot_channels}");
    }

    #[test]
    fn skipping_an_event_draws_as_building_it() {
        for seed in [1, 42] {
            let model = NexmarkModel::new(GeneratorConfig {
                events: 30_000,
                seed,
                ..GeneratorConfig::default()
            })
            .unwrap();
            let (mut built, mut skipped) = (model.events(), model.events());
            while !built.is_done() {
                let event = built.next().expect("an event");
                EventGenerator::skip(&mut skipped);
                assert_eq!(
                    built.random_state(),
                    skipped.random_state(),
                    "after {event:?}"
                );
            }
            assert!(skipped.is_done());
            assert_eq!(skipped.next_event_id(), 30_000);
        }
    }

    #[test]
    fn a_bad_rate_is_refused() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let config = GeneratorConfig {
                event_rate: rate,
                ..GeneratorConfig::default()
            };
            assert!(NexmarkModel::new(config).is_err());
        }
    }
}
