//! Medians and the formatting of measured numbers.

/// The median (mean of the two middle values for an even count); `NaN` for no values.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The median of `f` over `items`.
pub fn median_of<T>(items: &[T], f: impl Fn(&T) -> f64) -> f64 {
    median(&items.iter().map(f).collect::<Vec<_>>())
}

/// `12,345` (integers with thousands separators).
pub fn int(n: f64) -> String {
    if !n.is_finite() {
        return "n/a".into();
    }
    let n = n.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Seconds with a precision that suits the size.
pub fn secs(s: f64) -> String {
    if !s.is_finite() {
        "n/a".into()
    } else if s >= 100.0 {
        format!("{s:.0} s")
    } else if s >= 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.2} s")
    }
}

/// A ratio like `1.07×`.
pub fn ratio(r: f64) -> String {
    if !r.is_finite() {
        "n/a".into()
    } else if r >= 10.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}

/// Every run's value, for the raw-values line: `180.1 / 182.3 / 179.0`.
pub fn all(values: &[f64], fmt: impl Fn(f64) -> String) -> String {
    values
        .iter()
        .map(|v| fmt(*v))
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_formats() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(int(1234567.0), "1,234,567");
        assert_eq!(int(999.0), "999");
        assert_eq!(ratio(1.234), "1.23×");
        assert_eq!(secs(180.4), "180 s");
    }
}
