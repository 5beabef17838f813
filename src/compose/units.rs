//! Compose durations and byte sizes (pure).

/// Compose duration (`1h2m3s`, `500ms`, `1.5s`, or a bare number of
/// seconds) → whole seconds, rounded up so a grace period is never cut short.
pub fn parse_duration_secs(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(n) = t.parse::<f64>() {
        return (n >= 0.0).then(|| n.ceil() as i64);
    }
    let mut total_ms: f64 = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor_ms = match &rest[..unit_end] {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1_000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        total_ms += n * factor_ms;
        rest = &rest[unit_end..];
    }
    Some((total_ms / 1000.0).ceil() as i64)
}

/// Compose byte size (`512m`, `1gb`, `2048`, `1.5g`) → bytes; units are
/// binary multiples as docker uses them.
pub fn parse_memory_bytes(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    if num_end == 0 {
        return None;
    }
    let n: f64 = t[..num_end].parse().ok()?;
    let mult: u64 = match &t[num_end..] {
        "" | "b" => 1,
        "k" | "kb" | "ki" | "kib" => 1 << 10,
        "m" | "mb" | "mi" | "mib" => 1 << 20,
        "g" | "gb" | "gi" | "gib" => 1 << 30,
        "t" | "tb" | "ti" | "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = n * mult as f64;
    (bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("1m30s"), Some(90));
        assert_eq!(parse_duration_secs("500ms"), Some(1));
        assert_eq!(parse_duration_secs("2h"), Some(7200));
        assert_eq!(parse_duration_secs("10"), Some(10));
        assert_eq!(parse_duration_secs("1.5s"), Some(2));
        assert_eq!(parse_duration_secs("ten"), None);
        assert_eq!(parse_duration_secs("5x"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_memory_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_memory_bytes("1gb"), Some(1 << 30));
        assert_eq!(parse_memory_bytes("1.5g"), Some(3 << 29));
        assert_eq!(parse_memory_bytes("2048"), Some(2048));
        assert_eq!(parse_memory_bytes("lots"), None);
    }
}
