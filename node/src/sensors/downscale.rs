//! Reducing camera frames to the small grayscale images the pipeline uses.

/// Reduces a `w`×`h` luma image by the smallest integer factor that makes it
/// fit `max_w`×`max_h`, averaging each factor×factor block (a box filter,
/// which also averages out sensor noise). Returns the new size and pixels.
pub fn downscale_luma(luma: &[u8], w: u32, h: u32, max_w: u32, max_h: u32) -> (u32, u32, Vec<u8>) {
    let factor = w
        .div_ceil(max_w.max(1))
        .max(h.div_ceil(max_h.max(1)))
        .max(1);
    if factor == 1 {
        return (w, h, luma.to_vec());
    }
    let (ow, oh) = ((w / factor).max(1), (h / factor).max(1));
    let (w, f) = (w as usize, factor as usize);
    let area = (f * f) as u32;
    let mut out = Vec::with_capacity((ow * oh) as usize);
    for oy in 0..oh as usize {
        for ox in 0..ow as usize {
            let mut sum = 0u32;
            for y in oy * f..oy * f + f {
                let row = &luma[y * w + ox * f..y * w + ox * f + f];
                sum += row.iter().map(|&v| u32::from(v)).sum::<u32>();
            }
            out.push(((sum + area / 2) / area) as u8);
        }
    }
    (ow, oh, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_blocks() {
        // 4x2 -> factor 2 -> 2x1
        let (w, h, px) = downscale_luma(&[0, 10, 100, 100, 20, 30, 100, 104], 4, 2, 2, 2);
        assert_eq!((w, h), (2, 1));
        assert_eq!(px, vec![15, 101]);
    }

    #[test]
    fn small_frames_are_kept() {
        let (w, h, px) = downscale_luma(&[1, 2, 3, 4], 2, 2, 80, 60);
        assert_eq!((w, h, px), (2, 2, vec![1, 2, 3, 4]));
    }

    #[test]
    fn vga_becomes_80x60() {
        let luma = vec![7u8; 640 * 480];
        let (w, h, px) = downscale_luma(&luma, 640, 480, 80, 60);
        assert_eq!((w, h), (80, 60));
        assert!(px.iter().all(|&v| v == 7));
    }
}
