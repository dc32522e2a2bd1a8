//! `camera.y4m`: frames rendered one at a time and streamed.
//!
//! The view is a reflectance map (sky, a ragged tree line, textured ground,
//! a rock) drawn once from the camera's seed, with vegetation patches that
//! sway in the wind (their rows displaced more towards the top, by an
//! amount that follows the wind speed) and figures crossing it. By day the
//! light follows the sun and the clouds; an auto-exposure loop holds the
//! picture near mid-grey and corrects in sudden steps, now and then
//! hunting; sensor noise grows with the exposure gain. By night the camera
//! switches to its IR illuminator: grey, low-contrast, noisy frames with a
//! bright centre, in which vegetation shows light. On request each
//! daylight frame's header carries the exposure the loop chose
//! (`FRAME XEXPOSURE=<2^ev x 1000>`), as a camera that reports it would; IR
//! frames carry none.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::FieldgenError;
use super::figures::{self, Canvas};
use super::plan::{CameraFormat, Plan};
use super::signal::Noise;

/// A swaying patch of vegetation.
struct Patch {
    x0: usize,
    y0: usize,
    w: usize,
    h: usize,
    day: Vec<f32>,
    ir: Vec<f32>,
    freq: f32,
    phase: f32,
    stiffness: f32,
}

/// The static view and its swaying parts.
struct View {
    w: usize,
    h: usize,
    day: Vec<f32>,
    ir: Vec<f32>,
    patches: Vec<Patch>,
    mean_day: f32,
    vignette: Vec<f32>,
    hotspot: Vec<f32>,
}

/// Bilinear value noise in about `[-1, 1]` with cells of `cell` pixels.
fn value_noise(rng: &mut ChaCha8Rng, w: usize, h: usize, cell: f32) -> Vec<f32> {
    let gw = (w as f32 / cell).ceil() as usize + 2;
    let gh = (h as f32 / cell).ceil() as usize + 2;
    let grid: Vec<f32> = (0..gw * gh).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        let gy = y as f32 / cell;
        let iy = gy as usize;
        let fy = gy - iy as f32;
        for x in 0..w {
            let gx = x as f32 / cell;
            let ix = gx as usize;
            let fx = gx - ix as f32;
            let a = grid[iy * gw + ix] + (grid[iy * gw + ix + 1] - grid[iy * gw + ix]) * fx;
            let b = grid[(iy + 1) * gw + ix]
                + (grid[(iy + 1) * gw + ix + 1] - grid[(iy + 1) * gw + ix]) * fx;
            out[y * w + x] = a + (b - a) * fy;
        }
    }
    out
}

/// Octaves of value noise, finest last.
fn texture(rng: &mut ChaCha8Rng, w: usize, h: usize, cells: &[(f32, f32)]) -> Vec<f32> {
    let mut out = vec![0.0; w * h];
    for &(cell, weight) in cells {
        for (o, n) in out.iter_mut().zip(value_noise(rng, w, h, cell)) {
            *o += weight * n;
        }
    }
    out
}

impl View {
    fn new(rng: &mut ChaCha8Rng, w: usize, h: usize) -> View {
        let (wf, hf) = (w as f32, h as f32);
        let horizon = hf * rng.random_range(0.2..0.5f32);
        let sky = rng.random_range(0.75..0.95f32);
        let tree = rng.random_range(0.1..0.3f32);
        let tree_ir = rng.random_range(0.55..0.75f32);
        let ground = rng.random_range(0.22..0.45f32);
        let ground_ir = rng.random_range(0.35..0.55f32);
        let ridge_cell = rng.random_range(3.0..10.0);
        let ridge = value_noise(rng, w, 1, ridge_cell);
        let ridge_h = hf * rng.random_range(0.04..0.15f32);
        let grass = texture(rng, w, h, &[(12.0, 0.08), (4.0, 0.06), (1.5, 0.05)]);
        let leaves = texture(rng, w, h, &[(6.0, 0.08), (2.0, 0.1)]);
        let mut day = vec![0.0; w * h];
        let mut ir = vec![0.0; w * h];
        for y in 0..h {
            for (x, &rg) in ridge.iter().enumerate() {
                let i = y * w + x;
                let yf = y as f32;
                let top = horizon - ridge_h * (0.6 + 0.4 * rg);
                let (d, r) = if yf < top {
                    (sky - 0.1 * yf / horizon.max(1.0), 0.06)
                } else if yf < horizon {
                    (tree + leaves[i], tree_ir + leaves[i])
                } else {
                    (ground + grass[i], ground_ir + grass[i])
                };
                day[i] = d.clamp(0.02, 1.0);
                ir[i] = r.clamp(0.02, 1.0);
            }
        }
        // A rock or a post.
        {
            let mut c = Canvas { px: &mut day, w, h };
            let rx = wf * rng.random_range(0.03..0.1);
            let ry = hf * rng.random_range(0.03..0.08);
            let cx = wf * rng.random_range(0.1..0.9);
            let cy = rng.random_range(horizon + ry..hf.max(horizon + ry + 1.0));
            let v = rng.random_range(0.45..0.7);
            fill(&mut c, cx, cy, rx, ry, v);
            let mut c = Canvas { px: &mut ir, w, h };
            fill(&mut c, cx, cy, rx, ry, v * 0.8);
        }
        let n = rng.random_range(2..=5);
        let patches = (0..n)
            .map(|_| {
                let pw = ((wf * rng.random_range(0.12..0.45)) as usize).max(4);
                let ph = ((hf * rng.random_range(0.15..0.5)) as usize).max(4);
                let bottom = rng.random_range((horizon + hf * 0.15).min(hf - 1.0)..hf) as usize;
                let y0 = bottom.saturating_sub(ph);
                let x0 = rng.random_range(0..w.saturating_sub(pw / 2).max(1));
                let base = rng.random_range(0.08..0.35f32);
                let base_ir = rng.random_range(0.6..0.85f32);
                let tex = texture(rng, pw, ph, &[(3.0, 0.1), (1.2, 0.08)]);
                let mut pd = vec![-1.0; pw * ph];
                let mut pi = vec![-1.0; pw * ph];
                // A bush: an ellipse with a ragged edge; -1 is "not the patch".
                for y in 0..ph {
                    for x in 0..pw {
                        let dx = (x as f32 + 0.5) / pw as f32 * 2.0 - 1.0;
                        let dy = (y as f32 + 0.5) / ph as f32 * 2.0 - 1.0;
                        let i = y * pw + x;
                        if dx * dx + dy * dy < 1.0 + 0.8 * tex[i] {
                            pd[i] = (base + tex[i]).clamp(0.02, 1.0);
                            pi[i] = (base_ir + tex[i]).clamp(0.02, 1.0);
                        }
                    }
                }
                Patch {
                    x0,
                    y0,
                    w: pw,
                    h: ph,
                    day: pd,
                    ir: pi,
                    freq: rng.random_range(0.3..1.5),
                    phase: rng.random_range(0.0..6.3),
                    stiffness: rng.random_range(0.5..1.5),
                }
            })
            .collect();
        let mean_day = day.iter().sum::<f32>() / day.len().max(1) as f32;
        let (cx, cy) = (wf / 2.0, hf / 2.0);
        let r2 = |x: usize, y: usize| {
            let dx = (x as f32 + 0.5 - cx) / cx;
            let dy = (y as f32 + 0.5 - cy) / cy;
            (dx * dx + dy * dy) / 2.0
        };
        let vignette = (0..w * h).map(|i| 1.0 - 0.25 * r2(i % w, i / w)).collect();
        let hotspot = (0..w * h).map(|i| 1.0 - 0.55 * r2(i % w, i / w)).collect();
        View {
            w,
            h,
            day,
            ir,
            patches,
            mean_day,
            vignette,
            hotspot,
        }
    }
}

fn fill(c: &mut Canvas<'_>, cx: f32, cy: f32, rx: f32, ry: f32, v: f32) {
    for y in 0..c.h {
        for x in 0..c.w {
            let dx = (x as f32 + 0.5 - cx) / rx;
            let dy = (y as f32 + 0.5 - cy) / ry;
            if dx * dx + dy * dy <= 1.0 {
                c.px[y * c.w + x] = v;
            }
        }
    }
}

/// Draws the swaying patches into `px` with a sway of `amp` pixels.
fn draw_patches(view: &View, t: f64, amp: f32, ir: bool, px: &mut [f32]) {
    let w = view.w;
    for p in &view.patches {
        let tf = t as f32;
        let osc = (2.0 * std::f32::consts::PI * p.freq * tf + p.phase).sin()
            + 0.4 * (2.0 * std::f32::consts::PI * p.freq * 1.7 * tf + p.phase * 2.3).sin();
        let src = if ir { &p.ir } else { &p.day };
        let reach = amp.abs().ceil() as usize + 1;
        for y in 0..p.h {
            let gy = p.y0 + y;
            if gy >= view.h {
                break;
            }
            // Tops move, roots stay.
            let up = 1.0 - y as f32 / p.h as f32;
            let dx = amp * p.stiffness * up.powf(1.5) * osc;
            let xa = p.x0.saturating_sub(reach);
            let xb = (p.x0 + p.w + reach).min(w);
            for gx in xa..xb {
                let sx = gx as f32 - p.x0 as f32 - dx;
                if sx < 0.0 {
                    continue;
                }
                let i = sx as usize;
                if i + 1 >= p.w {
                    continue;
                }
                let a = src[y * p.w + i];
                let b = src[y * p.w + i + 1];
                if a < 0.0 || b < 0.0 {
                    continue;
                }
                let f = sx - i as f32;
                px[gy * w + gx] = a + (b - a) * f;
            }
        }
    }
}

/// Auto-exposure: holds a log2 gain, jumps when the picture is too far off
/// its target, hunts now and then.
struct Exposure {
    ev: f32,
    hunt: f32,
    hunt_left: u32,
}

/// Writes the scene's frames to `path`.
pub fn write_y4m(
    plan: &Plan,
    fmt: CameraFormat,
    report_exposure: bool,
    path: &Path,
) -> Result<(), FieldgenError> {
    let io = |e| FieldgenError::io(path, e);
    let (w, h) = (fmt.width as usize, fmt.height as usize);
    let mut rng = ChaCha8Rng::seed_from_u64(plan.camera_seed);
    let view = View::new(&mut rng, w, h);
    let mut noise = Noise::new(rng.random());
    let ir_level = rng.random_range(0.75..1.1f32);
    let ir_sigma = rng.random_range(5.0..11.0f32);
    let file = File::create(path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let colour = if fmt.chroma_420 { "C420jpeg" } else { "Cmono" };
    writeln!(out, "YUV4MPEG2 W{w} H{h} F{}:1 Ip A1:1 {colour}", fmt.fps).map_err(io)?;
    let frames = ((plan.duration * f64::from(fmt.fps)).floor() as u64).max(1);
    let gamma: Vec<f32> = (0..=1024)
        .map(|i| 255.0 * (i as f32 / 1024.0).powf(1.0 / 2.2))
        .collect();
    let chroma = if fmt.chroma_420 {
        vec![128u8; (w / 2) * (h / 2) * 2]
    } else {
        Vec::new()
    };
    let target = 0.18f32;
    let day_ev = (target / view.mean_day).log2();
    let mut ae = Exposure {
        ev: day_ev,
        hunt: 0.0,
        hunt_left: 0,
    };
    let mut refl = vec![0f32; w * h];
    let mut luma = vec![0u8; w * h];
    let hunt_p = 1.0 / (f64::from(fmt.fps) * 400.0);
    for i in 0..frames {
        let t = i as f64 / f64::from(fmt.fps);
        let night = plan.sky.is_night(t);
        let wind = plan.wind.speed.at(t);
        let amp = w as f32 / 160.0 * (0.25 * wind + 0.02 * wind * wind);
        refl.copy_from_slice(if night { &view.ir } else { &view.day });
        draw_patches(&view, t, amp, night, &mut refl);
        let mut canvas = Canvas {
            px: &mut refl,
            w,
            h,
        };
        for c in &plan.crossings {
            figures::draw(c, t, night, &mut canvas);
        }
        let mut exposure = None;
        if night {
            for (k, (o, &r)) in luma.iter_mut().zip(refl.iter()).enumerate() {
                let v = ir_level * (0.18 + 0.35 * r * view.hotspot[k]) * 255.0;
                *o = (v + ir_sigma * noise.normal()).clamp(0.0, 255.0) as u8;
            }
        } else {
            let light = plan.sky.light(t);
            let want = (target / (light * view.mean_day)).log2().clamp(-2.0, 9.0);
            if (want - ae.ev).abs() > 0.6 {
                ae.ev = (want * 3.0).round() / 3.0;
            }
            if ae.hunt_left > 0 {
                ae.hunt_left -= 1;
            } else {
                ae.hunt = 0.0;
                if (noise.unit() as f64) < hunt_p {
                    ae.hunt =
                        (0.7 + 0.9 * noise.unit()) * if noise.unit() < 0.5 { -1.0 } else { 1.0 };
                    ae.hunt_left = 1 + (noise.unit() * 4.0) as u32;
                }
            }
            exposure = Some((ae.ev + ae.hunt).exp2() * 1000.0);
            let gain = light * (ae.ev + ae.hunt).exp2();
            let sigma = (1.2 + 1.1 * (ae.ev - day_ev).max(0.0)).min(14.0);
            for (k, (o, &r)) in luma.iter_mut().zip(refl.iter()).enumerate() {
                let v = (r * gain * view.vignette[k]).clamp(0.0, 1.0);
                let g = gamma[(v * 1024.0) as usize];
                *o = (g + sigma * noise.normal()).clamp(0.0, 255.0) as u8;
            }
        }
        match exposure.filter(|_| report_exposure) {
            Some(e) => writeln!(out, "FRAME XEXPOSURE={e:.3}").map_err(io)?,
            None => out.write_all(b"FRAME\n").map_err(io)?,
        }
        out.write_all(&luma).map_err(io)?;
        out.write_all(&chroma).map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(())
}
