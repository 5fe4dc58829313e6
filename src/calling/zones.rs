//! Time zones: names, the zones of a country, and the candidate zones of one contact.
//!
//! Zone data is the IANA database compiled into the binary (jiff's bundled tzdb): the host's
//! `/usr/share/zoneinfo` is never read, so every machine and the container answer alike. The
//! country → zones map is tzdb's own `zone1970.tab` (release 2025b, public domain), embedded
//! as text and parsed once.
//!
//! Which zones a contact may be living by, in order of precedence (the reading of issue 6
//! written down here):
//! 1. its own `timezone` column, when present: exactly that zone;
//! 2. else the zones of its number's country (libphonenumber's region for the number):
//!    - one zone → that zone;
//!    - several → all of them: the zone is ambiguous, so the window must be open in every
//!      candidate at once (a US number with `09:00-20:00` is dialled only while it is at least
//!      09:00 in Honolulu and before 20:00 in New York);
//! 3. else (no country for the number, e.g. `+800`, or a country without a row) the campaign's
//!    zone.
//!
//! Two refinements keep "several zones" honest:
//! - zones of a country whose clocks agree from [`EQUIVALENT_SINCE`] on, as far as the database
//!   projects, are one candidate (the first listed: tzdb lists a country's most populous zone
//!   first, and a zone shared with a neighbour under the neighbour's code): Germany's
//!   `Europe/Zurich` row (Büsingen) collapses into `Europe/Berlin`, the US's 29 rows into 8
//!   clocks (New York, Chicago, Denver, Phoenix, Los Angeles, Anchorage, Adak, Honolulu);
//! - [`LEGAL_SINGLE_TIME`]: China keeps one legal time (Beijing time). tzdb also lists
//!   `Asia/Urumqi`, Xinjiang's unofficial UTC+6 clock; treating Chinese numbers as ambiguous
//!   would shift every Chinese window two hours later. A contact known to keep Xinjiang time
//!   can say so in its `timezone` column.

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

use jiff::civil::date;
use jiff::tz::{Offset, TimeZone, TimeZoneDatabase};
use jiff::Timestamp;

/// tzdb's country → zone table (see the module doc).
const ZONE1970_TAB: &str = include_str!("zone1970.tab");

/// Countries whose law sets one time for the whole country although tzdb lists more zones.
pub const LEGAL_SINGLE_TIME: &[(&str, &str)] = &[("CN", "Asia/Shanghai")];

/// Zones of one country whose UTC offsets agree at every instant from this date (UTC) on are
/// the same clock for calling purposes. Later is closer to "from now on" (Kazakhstan's zones
/// agree since 2024, Yukon's with Dawson Creek since 2020); earlier only keeps more candidates,
/// which narrows windows but never opens one wrongly.
pub const EQUIVALENT_SINCE: (i16, i8, i8) = (2025, 1, 1);
/// How far ahead the equivalence is checked; the database's rules for the future are periodic,
/// so two zones that agree for 30 years agree for good.
const EQUIVALENT_UNTIL: (i16, i8, i8) = (2050, 1, 1);

/// The zone named `name` (an IANA name such as `Asia/Shanghai`, `America/New_York` or `UTC`;
/// ASCII case does not matter), or the reason it is not one.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("an empty time zone name".into());
    }
    TimeZoneDatabase::bundled()
        .get(name)
        .map_err(|_| format!("{name:?} is not an IANA time zone name"))
}

/// The name to show for `zone` (its IANA name, or its fixed offset).
pub fn name(zone: &TimeZone) -> String {
    match zone.iana_name() {
        Some(n) => n.to_string(),
        None => format!("{zone:?}"),
    }
}

/// The clocks of a country (ISO 3166 code, any case), most populous first; empty when the
/// table has no row for it. A country's zones are loaded and compared on first use.
pub fn country_zones(region: &str) -> &'static [TimeZone] {
    let region = region.trim().as_bytes();
    let [a, b] = region else { return &[] };
    let key = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
    let Some(country) = std::str::from_utf8(&key)
        .ok()
        .and_then(|k| COUNTRIES.get(k))
    else {
        return &[];
    };
    country
        .zones
        .get_or_init(|| distinct_clocks(&country.names))
}

struct Country {
    names: Vec<&'static str>,
    zones: OnceLock<Vec<TimeZone>>,
}

/// Zone names per country, from the table (cheap: no zone is loaded here).
static COUNTRIES: LazyLock<HashMap<&'static str, Country>> = LazyLock::new(|| {
    let mut own: HashMap<&'static str, Vec<&'static str>> = HashMap::new();
    let mut shared: HashMap<&'static str, Vec<&'static str>> = HashMap::new();
    for line in ZONE1970_TAB.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split('\t');
        let (Some(codes), Some(_coords), Some(name)) = (cols.next(), cols.next(), cols.next())
        else {
            continue;
        };
        // A country listed first owns the row (its most populous zone); rows where it is
        // listed later belong to a neighbour's clock and come after its own.
        for (i, code) in codes.split(',').enumerate() {
            let target = if i == 0 { &mut own } else { &mut shared };
            target.entry(code).or_default().push(name);
        }
    }
    for (code, names) in shared {
        own.entry(code).or_default().extend(names);
    }
    for (code, name) in LEGAL_SINGLE_TIME {
        own.insert(code, vec![name]);
    }
    own.into_iter()
        .map(|(code, names)| {
            let zones = OnceLock::new();
            (code, Country { names, zones })
        })
        .collect()
});

/// The zones named, in order, dropping each that keeps the same clock as one before it. A
/// name the compiled-in database lacks is left out (a test checks there is none).
fn distinct_clocks(names: &[&str]) -> Vec<TimeZone> {
    let mut kept: Vec<(TimeZone, Vec<(Timestamp, Offset)>)> = Vec::new();
    for name in names {
        let Ok(tz) = zone(name) else { continue };
        if names.len() == 1 {
            return vec![tz];
        }
        let clock = offsets(&tz);
        if !kept.iter().any(|(_, other)| *other == clock) {
            kept.push((tz, clock));
        }
    }
    kept.into_iter().map(|(tz, _)| tz).collect()
}

/// The offset at [`EQUIVALENT_SINCE`] and every change of offset up to [`EQUIVALENT_UNTIL`].
fn offsets(tz: &TimeZone) -> Vec<(Timestamp, Offset)> {
    let at = |(y, m, d): (i16, i8, i8)| {
        date(y, m, d)
            .to_datetime(jiff::civil::Time::midnight())
            .to_zoned_datetime(TimeZone::UTC)
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::UNIX_EPOCH)
    };
    let (since, until) = (at(EQUIVALENT_SINCE), at(EQUIVALENT_UNTIL));
    let mut out = vec![(since, tz.to_offset(since))];
    for t in tz.following(since) {
        if t.timestamp() >= until {
            break;
        }
        if out.last().is_some_and(|(_, o)| *o != t.offset()) {
            out.push((t.timestamp(), t.offset()));
        }
    }
    // Equality compares the changes, not the first instant.
    out[0].0 = Timestamp::UNIX_EPOCH;
    out
}

/// Why a contact has the candidate zones it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneSource {
    /// The contact's own `timezone` column.
    Contact,
    /// The country of the number (ISO 3166 code).
    Country(String),
    /// The campaign's zone: the number's country is unknown or has no zone row.
    Campaign,
}

/// The zones a contact may be living by (see the module doc). Never empty.
#[derive(Debug, Clone)]
pub struct Candidates {
    zones: CandidateZones,
    pub source: ZoneSource,
}

#[derive(Debug, Clone)]
enum CandidateZones {
    One(TimeZone),
    Country(&'static [TimeZone]),
}

impl Candidates {
    pub fn as_slice(&self) -> &[TimeZone] {
        match &self.zones {
            CandidateZones::One(tz) => std::slice::from_ref(tz),
            CandidateZones::Country(zones) => zones,
        }
    }

    /// More than one clock: the window must be open in all of them.
    pub fn is_ambiguous(&self) -> bool {
        self.as_slice().len() > 1
    }
}

/// The candidate zones of a contact: `contact_zone` (its validated `timezone` column), else the
/// zones of `number`'s country, else `campaign`.
pub fn candidates(
    contact_zone: Option<&TimeZone>,
    number: &str,
    campaign: &TimeZone,
) -> Candidates {
    if let Some(tz) = contact_zone {
        return Candidates {
            zones: CandidateZones::One(tz.clone()),
            source: ZoneSource::Contact,
        };
    }
    if let Some(region) = crate::phone::region_of(number) {
        let zones = country_zones(&region);
        if !zones.is_empty() {
            return Candidates {
                zones: CandidateZones::Country(zones),
                source: ZoneSource::Country(region),
            };
        }
    }
    Candidates {
        zones: CandidateZones::One(campaign.clone()),
        source: ZoneSource::Campaign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(zones: &[TimeZone]) -> Vec<String> {
        zones.iter().map(name).collect()
    }

    #[test]
    fn every_zone_in_the_country_table_is_in_the_compiled_database() {
        let missing: Vec<&str> = ZONE1970_TAB
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| l.split('\t').nth(2))
            .filter(|n| zone(n).is_err())
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
        assert!(COUNTRIES.len() > 240, "{} countries", COUNTRIES.len());
    }

    #[test]
    fn single_zone_countries_get_their_zone() {
        assert_eq!(names(country_zones("CN")), ["Asia/Shanghai"]);
        assert_eq!(names(country_zones("de")), ["Europe/Berlin"]);
        assert_eq!(names(country_zones("JP")), ["Asia/Tokyo"]);
        assert_eq!(names(country_zones("IN")), ["Asia/Kolkata"]);
        assert!(country_zones("XX").is_empty());
    }

    #[test]
    fn multi_zone_countries_list_each_distinct_clock_once() {
        assert_eq!(
            names(country_zones("US")),
            [
                "America/New_York",
                "America/Chicago",
                "America/Denver",
                "America/Phoenix",
                "America/Los_Angeles",
                "America/Anchorage",
                "America/Adak",
                "Pacific/Honolulu"
            ]
        );
        assert_eq!(
            names(country_zones("ES")),
            ["Europe/Madrid", "Atlantic/Canary"]
        );
        assert_eq!(
            names(country_zones("PT")),
            ["Europe/Lisbon", "Atlantic/Azores"]
        );
    }

    #[test]
    fn zone_names_are_checked_and_case_insensitive() {
        assert_eq!(name(&zone("asia/shanghai").unwrap()), "Asia/Shanghai");
        assert_eq!(name(&zone("UTC").unwrap()), "UTC");
        assert_eq!(
            zone("Asia/Shangai").unwrap_err(),
            "\"Asia/Shangai\" is not an IANA time zone name"
        );
        assert!(zone(" ").is_err());
    }

    #[test]
    fn candidates_prefer_the_contact_then_the_country_then_the_campaign() {
        let campaign = zone("Europe/Paris").unwrap();
        let tokyo = zone("Asia/Tokyo").unwrap();
        let c = candidates(Some(&tokyo), "+16502530000", &campaign);
        assert_eq!(
            (names(c.as_slice()), c.source),
            (vec!["Asia/Tokyo".into()], ZoneSource::Contact)
        );

        let c = candidates(None, "008613800138000", &campaign);
        assert_eq!(names(c.as_slice()), ["Asia/Shanghai"]);
        assert_eq!(c.source, ZoneSource::Country("CN".into()));
        assert!(!c.is_ambiguous());

        let c = candidates(None, "+16502530000", &campaign);
        assert_eq!(c.source, ZoneSource::Country("US".into()));
        assert!(c.is_ambiguous());
        assert_eq!(c.as_slice().len(), 8);

        // A Canadian number (area code 506, New Brunswick) has Canada's clocks, not the US's.
        let c = candidates(None, "+15062345678", &campaign);
        assert_eq!(c.source, ZoneSource::Country("CA".into()));

        // International freephone (+800) has no country.
        let c = candidates(None, "+80012345678", &campaign);
        assert_eq!(
            (names(c.as_slice()), c.source),
            (vec!["Europe/Paris".into()], ZoneSource::Campaign)
        );
    }
}
