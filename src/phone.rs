//! Phone number validation and normalisation (temporary: replaced by numbering-plan metadata).

use crate::config::CalleeFormat;

pub fn country_code_for_region(region: &str) -> Option<u16> {
    match region {
        "CN" => Some(86),
        "DE" => Some(49),
        "US" => Some(1),
        "GB" => Some(44),
        _ => None,
    }
}

pub fn normalize(raw: &str, default_region: &str, format: CalleeFormat) -> Result<String, String> {
    let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    let _ = (default_region, format);
    if digits.len() < 8 {
        return Err("not a phone number".into());
    }
    Ok(format!("0086{digits}"))
}
