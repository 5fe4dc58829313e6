//! Phone numbers: validated and normalised with libphonenumber's numbering-plan metadata
//! (the `rlibphonenumber` port, which keeps Google's metadata current and was checked here
//! against numbers the older `phonenumber` crate mangles, e.g. `+86 138…` parsed with a US
//! default region losing a digit).
//!
//! Pure: input text, default region and output format in; the number to dial or a reason out.

use rlibphonenumber::{enums::Region, PhoneNumberFormat, PHONE_NUMBER_UTIL};

use crate::config::CalleeFormat;

fn region(code: &str) -> Option<Region> {
    code.trim().to_ascii_uppercase().parse::<Region>().ok()
}

/// The calling code of an ISO region (`CN` → 86), or `None` for an unknown region.
pub fn country_code_for_region(code: &str) -> Option<u16> {
    let r = region(code)?;
    PHONE_NUMBER_UTIL
        .get_country_code_for_region(r)
        .and_then(|cc| u16::try_from(cc).ok())
        .filter(|cc| *cc > 0)
}

/// Validate `raw` and write it as the account dials: `+CC…` and `00CC…` are international;
/// anything else is national in `default_region`.
pub fn normalize(raw: &str, default_region: &str, format: CalleeFormat) -> Result<String, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err("empty".into());
    }
    // libphonenumber finds a number inside any text ("call +86…", a quote left open that
    // swallowed the next line); a dialer must not guess what a field meant.
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_digit() || c.is_whitespace() || "+-().".contains(*c)))
    {
        return Err(format!(
            "contains {c:?}: expected digits, optionally with a leading +, spaces, dashes, dots or brackets"
        ));
    }
    // 00 is the ITU international prefix and the service's own spelling (0086…); treat it as
    // international whatever the default region's own exit code is (011 in the US).
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let input = match compact.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => compact,
    };
    let default = region(default_region);
    let number = PHONE_NUMBER_UTIL
        .parse(&input, default)
        .map_err(|e| format!("not a phone number ({e})"))?;
    if !number.is_valid() {
        return Err(format!(
            "not a valid number for {} (+{}) by the numbering plan",
            PHONE_NUMBER_UTIL
                .get_region_for_number(&number)
                .map(|r| r.to_string())
                .unwrap_or_else(|| "its country".into()),
            number.country_code
        ));
    }
    let e164 = number.format_as(PhoneNumberFormat::E164);
    Ok(match format {
        CalleeFormat::E164 => e164.into_owned(),
        CalleeFormat::DoubleZero => format!("00{}", e164.trim_start_matches('+')),
    })
}

/// The ISO region (`CN`, `US`, `CA`…) of an already normalised number (`+…` or `00…`), or
/// `None` when the number belongs to no country (e.g. `+800`) or does not parse.
pub fn region_of(normalised: &str) -> Option<String> {
    let digits = normalised
        .strip_prefix('+')
        .or_else(|| normalised.strip_prefix("00"))?;
    let number = PHONE_NUMBER_UTIL.parse(format!("+{digits}"), None).ok()?;
    let region = PHONE_NUMBER_UTIL.get_region_for_number(&number)?;
    let code = region.to_string();
    (code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zz(raw: &str, region: &str) -> Result<String, String> {
        normalize(raw, region, CalleeFormat::DoubleZero)
    }

    #[test]
    fn chinese_numbers_in_every_spelling_become_0086() {
        for raw in [
            "+8613800138000",
            "008613800138000",
            "13800138000",
            "+86 138 0013 8000",
            "0086 138-0013-8000",
        ] {
            assert_eq!(zz(raw, "CN").as_deref(), Ok("008613800138000"), "{raw}");
        }
        assert_eq!(zz("010 12345678", "CN").as_deref(), Ok("00861012345678"));
    }

    #[test]
    fn german_mobiles_keep_every_digit() {
        for (raw, want) in [
            ("+49 1512 3456789", "+4915123456789"),
            ("01511 2345678", "+4915112345678"),
            ("0176 12345678", "+4917612345678"),
            ("+49 171 1234567", "+491711234567"),
            ("0049 176 12345678", "+4917612345678"),
        ] {
            assert_eq!(
                normalize(raw, "DE", CalleeFormat::E164).as_deref(),
                Ok(want),
                "{raw}"
            );
        }
    }

    #[test]
    fn international_numbers_ignore_the_default_region() {
        assert_eq!(
            normalize("+86 138 0013 8000", "US", CalleeFormat::E164).as_deref(),
            Ok("+8613800138000")
        );
        assert_eq!(
            zz("008613800138000", "US").as_deref(),
            Ok("008613800138000")
        );
        assert_eq!(
            normalize("(650) 253-0000", "US", CalleeFormat::E164).as_deref(),
            Ok("+16502530000")
        );
    }

    #[test]
    fn invalid_numbers_say_why() {
        assert!(zz("abc", "CN").unwrap_err().starts_with("contains 'a'"));
        let e = zz("call +8613800138000", "CN").unwrap_err();
        assert!(
            e.starts_with("contains 'c'"),
            "a number inside text is not guessed: {e}"
        );
        assert!(zz("", "CN").unwrap_err().contains("empty"));
        assert!(zz("+999 1234567", "CN")
            .unwrap_err()
            .starts_with("not a phone number"));
        let e = zz("+49 123", "DE").unwrap_err();
        assert!(e.contains("not a valid number for DE (+49)"), "{e}");
        assert!(zz("+86138000000012", "CN").is_err(), "one digit too many");
    }

    #[test]
    fn regions_map_to_calling_codes() {
        assert_eq!(country_code_for_region("CN"), Some(86));
        assert_eq!(country_code_for_region("de"), Some(49));
        assert_eq!(country_code_for_region("XX"), None);
        assert_eq!(country_code_for_region(""), None);
    }

    #[test]
    fn normalised_numbers_know_their_region() {
        assert_eq!(region_of("008613800138000").as_deref(), Some("CN"));
        assert_eq!(region_of("+4915123456789").as_deref(), Some("DE"));
        assert_eq!(region_of("+16502530000").as_deref(), Some("US"));
        assert_eq!(region_of("+15062345678").as_deref(), Some("CA"));
        assert_eq!(region_of("+80012345678"), None, "freephone has no country");
        assert_eq!(region_of("13800138000"), None, "not normalised");
    }
}
