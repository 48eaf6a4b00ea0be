//! Resource limits of worker containers, parsed like `docker run --memory/--cpus/--pids-limit`
//! and checked before anything is created.

use serde::Serialize;

use super::FleetError;

/// Resource limits of each worker container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids: i64,
}

/// Parses `512m`, `1g`, `256M`, `1048576` (bytes) like `docker run --memory`.
pub fn parse_memory(s: &str) -> Result<i64, FleetError> {
    let bad = || FleetError::BadMemory {
        value: s.to_string(),
    };
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some(c) if c.is_ascii_digit() => (t, 1),
        _ => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let bytes = n * mult as f64;
    // Docker refuses less than 6 MiB; a worker needs more anyway.
    if !bytes.is_finite() || bytes < (6 << 20) as f64 || bytes > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

/// Parses `0.5`, `2` like `docker run --cpus`, into nano-CPUs.
pub fn parse_cpus(s: &str) -> Result<i64, FleetError> {
    let n: f64 = s.trim().parse().map_err(|_| FleetError::BadCpus {
        value: s.to_string(),
    })?;
    if !n.is_finite() || !(0.01..=1024.0).contains(&n) {
        return Err(FleetError::BadCpus {
            value: s.to_string(),
        });
    }
    Ok((n * 1e9) as i64)
}

impl Limits {
    pub fn parse(memory: &str, cpus: &str, pids: i64) -> Result<Limits, FleetError> {
        if pids < 16 {
            return Err(FleetError::BadPids { value: pids });
        }
        Ok(Limits {
            memory_bytes: parse_memory(memory)?,
            nano_cpus: parse_cpus(cpus)?,
            pids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse_like_docker() {
        assert_eq!(parse_memory("256m").unwrap(), 256 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_memory("512MB").unwrap(), 512 << 20);
        for bad in ["1x", "", "m", "-1g", "1k", "lots"] {
            let e = parse_memory(bad).unwrap_err().to_string();
            assert!(e.contains("--memory") && e.contains("512m"), "{bad}: {e}");
        }
    }

    #[test]
    fn cpus_parse_like_docker() {
        assert_eq!(parse_cpus("0.5").unwrap(), 500_000_000);
        assert_eq!(parse_cpus("2").unwrap(), 2_000_000_000);
        for bad in ["-1", "0", "x", "NaN"] {
            let e = parse_cpus(bad).unwrap_err().to_string();
            assert!(e.contains("--cpus"), "{bad}: {e}");
        }
        assert!(matches!(
            Limits::parse("1g", "1", 4),
            Err(FleetError::BadPids { .. })
        ));
    }
}
