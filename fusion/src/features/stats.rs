//! Small statistics helpers for feature vectors (NaN-free inputs assumed;
//! empty inputs give 0).

/// Arithmetic mean.
pub fn mean(x: &[f32]) -> f32 {
    if x.is_empty() {
        0.0
    } else {
        x.iter().sum::<f32>() / x.len() as f32
    }
}

/// Population standard deviation.
pub fn std_dev(x: &[f32]) -> f32 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / x.len() as f32).sqrt()
}

/// The `q` quantile (0..=1) by nearest rank; reorders `x`.
pub fn percentile(x: &mut [f32], q: f32) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    let k = ((x.len() - 1) as f32 * q.clamp(0.0, 1.0)).round() as usize;
    let (_, v, _) = x.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    *v
}

/// Largest value (0 for none).
pub fn max(x: &[f32]) -> f32 {
    x.iter()
        .copied()
        .fold(None, |m: Option<f32>, v| Some(m.map_or(v, |m| m.max(v))))
        .unwrap_or(0.0)
}
