//! Small value grammars used by KOM fields (load stage, pure): Kubernetes
//! quantities, cron schedules, retention ages and name rules. Each returns
//! a message fit to follow "`field`: " in a diagnostic.

use crate::model::is_dns_label;

/// A Kubernetes quantity (`32Gi`, `1G`, `500Mi`, `1e9`, `1.5Gi`, `1024`) as
/// a whole number of bytes. Fractions of a byte are an error, as in the
/// original (`Quantity.AsInt64` fails on them).
pub fn parse_quantity(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let bad = || {
        format!(
            "`{text}` is not a size: use bytes (e.g. 34359738368) or a Kubernetes quantity (e.g. 32Gi, 500Mi, 1G)"
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    let (neg, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(num_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err(bad());
    }
    // value = mantissa / 10^frac_len * num / den
    let digits = format!("{int_part}{frac_part}");
    let mantissa: u128 = digits.parse().map_err(|_| bad())?;
    let mut num: u128 = 1;
    let mut den: u128 = 10u128.checked_pow(frac_part.len() as u32).ok_or_else(bad)?;
    let pow = |base: u128, exp: u32| base.checked_pow(exp).ok_or_else(bad);
    match suffix {
        "" => {}
        "Ki" => num = pow(2, 10)?,
        "Mi" => num = pow(2, 20)?,
        "Gi" => num = pow(2, 30)?,
        "Ti" => num = pow(2, 40)?,
        "Pi" => num = pow(2, 50)?,
        "Ei" => num = pow(2, 60)?,
        "m" => den = den.checked_mul(1000).ok_or_else(bad)?,
        "k" => num = pow(10, 3)?,
        "M" => num = pow(10, 6)?,
        "G" => num = pow(10, 9)?,
        "T" => num = pow(10, 12)?,
        "P" => num = pow(10, 15)?,
        "E" => num = pow(10, 18)?,
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().map_err(|_| bad())?;
            if e.unsigned_abs() > 30 {
                return Err(format!("`{text}` is too large"));
            }
            if e >= 0 {
                num = pow(10, e as u32)?;
            } else {
                den = den
                    .checked_mul(pow(10, e.unsigned_abs())?)
                    .ok_or_else(bad)?;
            }
        }
        _ => return Err(bad()),
    }
    if neg && mantissa != 0 {
        return Err(format!("`{text}` is negative; a size must be 0 or more"));
    }
    let total = mantissa
        .checked_mul(num)
        .ok_or_else(|| format!("`{text}` is too large"))?;
    if total % den != 0 {
        return Err(format!("`{text}` is not a whole number of bytes"));
    }
    u64::try_from(total / den).map_err(|_| format!("`{text}` is too large"))
}

/// A 5-field cron schedule (`minute hour day-of-month month day-of-week`),
/// or one of the usual macros (`@daily`, ...). Field values are checked
/// against their ranges so a typo fails at load rather than at 3 a.m.
pub fn check_cron(text: &str) -> Result<(), String> {
    let s = text.trim();
    if s.starts_with('@') {
        return match s {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(()),
            _ => Err(format!(
                "unknown schedule macro `{s}` (use @hourly, @daily, @weekly, @monthly, @yearly or 5 cron fields)"
            )),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "`{text}` has {} fields; a cron schedule has 5: minute hour day-of-month month day-of-week (e.g. \"0 3 * * *\")",
            fields.len()
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let specs: [(&str, u32, u32, &[&str], u32); 5] = [
        ("minute", 0, 59, &[], 0),
        ("hour", 0, 23, &[], 0),
        ("day-of-month", 1, 31, &[], 0),
        ("month", 1, 12, MONTHS, 1),
        ("day-of-week", 0, 7, DAYS, 0),
    ];
    for (field, (name, lo, hi, names, name_base)) in fields.iter().zip(specs) {
        let value = |v: &str| -> Result<u32, String> {
            let lower = v.to_ascii_lowercase();
            if let Some(i) = names.iter().position(|n| *n == lower) {
                return Ok(i as u32 + name_base);
            }
            match v.parse::<u32>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(n),
                _ => Err(format!(
                    "`{v}` is not a valid {name} in `{text}` (expected {lo}-{hi}{})",
                    if names.is_empty() { "" } else { " or a name" }
                )),
            }
        };
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, st)) => (r, Some(st)),
                None => (item, None),
            };
            if let Some(st) = step
                && !matches!(st.parse::<u32>(), Ok(n) if n >= 1)
            {
                return Err(format!("`{item}` has an invalid step in `{text}`"));
            }
            if range == "*" {
                continue;
            }
            match range.split_once('-') {
                Some((a, b)) => {
                    if value(a)? > value(b)? {
                        return Err(format!("`{range}` is a backwards range in `{text}`"));
                    }
                }
                None => {
                    value(range)?;
                }
            }
        }
    }
    Ok(())
}

/// A retention age: a positive whole number followed by `m` (minutes), `h`,
/// `d` or `w` (`30m`, `720h`, `7d`, `4w`).
pub fn check_max_age(text: &str) -> Result<(), String> {
    let s = text.trim();
    let bad = || {
        format!("`{text}` is not an age: use a number and a unit m, h, d or w (e.g. 7d, 720h, 30m)")
    };
    let Some(unit) = s.chars().last() else {
        return Err(bad());
    };
    if !matches!(unit, 'm' | 'h' | 'd' | 'w') {
        return Err(bad());
    }
    match s[..s.len() - 1].parse::<u64>() {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err(format!("`{text}` must be more than zero")),
        Err(_) => Err(bad()),
    }
}

/// Ingress rule names (reference §2.4): 1..15 characters, `a-z` first,
/// then `a-z0-9-` (they become part of Traefik and Service names).
pub fn is_ingress_rule_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=15).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Disk and snapshot names (reference §2.4): DNS-1123 labels of 1..24.
pub fn is_disk_name(s: &str) -> bool {
    is_dns_label(s) && s.len() <= 24
}

/// Volume names (reference §2.4): DNS-1123 labels of 1..16.
pub fn is_volume_name(s: &str) -> bool {
    is_dns_label(s) && s.len() <= 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("32Gi"), Ok(32 << 30));
        assert_eq!(parse_quantity("1G"), Ok(1_000_000_000));
        assert_eq!(parse_quantity("500Mi"), Ok(500 << 20));
        assert_eq!(parse_quantity("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_quantity("1024"), Ok(1024));
        assert_eq!(parse_quantity("1e9"), Ok(1_000_000_000));
        assert_eq!(parse_quantity("2k"), Ok(2000));
        assert_eq!(parse_quantity("0"), Ok(0));
        assert!(parse_quantity("0.5").unwrap_err().contains("whole number"));
        assert!(parse_quantity("-1Gi").unwrap_err().contains("negative"));
        assert!(parse_quantity("32GB").unwrap_err().contains("not a size"));
        assert!(parse_quantity("").is_err());
        assert!(parse_quantity("Gi").is_err());
        assert!(parse_quantity("1.2.3").is_err());
        assert!(parse_quantity("100Ei").unwrap_err().contains("too large"));
    }

    #[test]
    fn cron() {
        assert!(check_cron("0 3 * * *").is_ok());
        assert!(check_cron("*/15 0-6,22 1 jan-mar MON").is_ok());
        assert!(check_cron("@daily").is_ok());
        assert!(check_cron("0 3 * *").unwrap_err().contains("has 4 fields"));
        assert!(check_cron("60 3 * * *").unwrap_err().contains("minute"));
        assert!(check_cron("0 3 * * 8").is_err());
        assert!(check_cron("0 3 * * x").is_err());
        assert!(check_cron("0 3/0 * * *").is_err());
        assert!(check_cron("0 5-3 * * *").unwrap_err().contains("backwards"));
        assert!(check_cron("@sometimes").is_err());
    }

    #[test]
    fn ages() {
        for ok in ["7d", "720h", "30m", "4w"] {
            assert!(check_max_age(ok).is_ok(), "{ok}");
        }
        for bad in ["7", "d", "0d", "7days", "1.5d", "-1d", ""] {
            assert!(check_max_age(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(is_ingress_rule_name("main"));
        assert!(is_ingress_rule_name("a-1"));
        assert!(!is_ingress_rule_name("1a"));
        assert!(!is_ingress_rule_name("abcdefghijklmnop"));
        assert!(!is_ingress_rule_name(""));
        assert!(is_volume_name("data"));
        assert!(!is_volume_name("a-very-long-volume-name"));
        assert!(!is_volume_name("Data"));
        assert!(is_disk_name("data-g1"));
        assert!(!is_disk_name(&"a".repeat(25)));
    }
}
