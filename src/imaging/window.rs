use serde::Serialize;

/// A linear window (DICOM VOI, "window/level"): values in `center ± width/2` map to black…white.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Window {
    pub center: f64,
    pub width: f64,
}

impl Window {
    pub fn new(center: f64, width: f64) -> Self {
        Self { center, width: width.max(f64::MIN_POSITIVE) }
    }

    /// The window that spans `lo..=hi` exactly.
    pub fn from_range(lo: f64, hi: f64) -> Self {
        let width = (hi - lo).max(1e-6);
        Self::new(lo + width / 2.0, width)
    }

    /// Parses "CENTER,WIDTH" as given on the command line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (c, w) = text
            .split_once(',')
            .ok_or_else(|| format!("window must be CENTER,WIDTH, got {text:?}"))?;
        let center: f64 = c.trim().parse().map_err(|_| format!("window center {c:?} is not a number"))?;
        let width: f64 = w.trim().parse().map_err(|_| format!("window width {w:?} is not a number"))?;
        if !(width > 0.0) || !center.is_finite() || !width.is_finite() {
            return Err(format!("window width must be a positive number, got {w:?}"));
        }
        Ok(Self::new(center, width))
    }

    /// Maps a value to 0..=255 (linear, clamped).
    #[inline]
    pub fn to_u8(&self, value: f32) -> u8 {
        let lo = self.center - self.width / 2.0;
        let t = (f64::from(value) - lo) / self.width;
        (t.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_edges_to_black_and_white() {
        let w = Window::new(40.0, 400.0);
        assert_eq!(w.to_u8(-160.0), 0);
        assert_eq!(w.to_u8(240.0), 255);
        assert_eq!(w.to_u8(40.0), 128);
        assert_eq!(w.to_u8(-3000.0), 0);
    }

    #[test]
    fn parses_command_line_windows() {
        assert_eq!(Window::parse("40,400").unwrap(), Window::new(40.0, 400.0));
        assert!(Window::parse("40").is_err());
        assert!(Window::parse("a,400").is_err());
        assert!(Window::parse("40,-1").is_err());
    }
}
