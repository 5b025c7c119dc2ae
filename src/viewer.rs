//! The frame viewer: the frame texture, panned and zoomed, with face boxes
//! and landmarks drawn over it.

use auscope_core::face::Face;
use eframe::egui::{self, Color32, ColorImage, Pos2, Rect, Sense, Stroke, TextureHandle, TextureOptions, Vec2};

use crate::explain_ui::MapOverlay;
use crate::overlay_gpu::{OverlayDraw, paint_callback};

/// Pan and zoom; zoom 1 fits the frame to the view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewTransform {
    pub zoom: f32,
    /// Offset of the frame's centre from the view's centre, in screen points.
    pub pan: Vec2,
}

impl Default for ViewTransform {
    fn default() -> Self {
        ViewTransform {
            zoom: 1.0,
            pan: Vec2::ZERO,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct OverlayOptions {
    pub boxes: bool,
    pub landmarks: bool,
}

/// Frame pixels -> screen points for a frame of `size` shown in `view`.
pub fn screen_from_frame(
    view: Rect,
    size: Vec2,
    t: &ViewTransform,
) -> impl Fn(Pos2) -> Pos2 + use<> {
    let scale = (view.width() / size.x).min(view.height() / size.y) * t.zoom;
    let origin = view.center() + t.pan - size * scale / 2.0;
    move |p: Pos2| origin + p.to_vec2() * scale
}

/// Show the frame, with `map` (an explanation over a face crop) blended on
/// it by the GPU overlay when `gpu`, else by a CPU-coloured texture; returns
/// the index of a face the user clicked on. `slot` tells viewers drawn in the
/// same frame apart (0 or 1).
#[allow(clippy::too_many_arguments)]
pub fn viewer_ui(
    ui: &mut egui::Ui,
    texture: &TextureHandle,
    frame_size: Vec2,
    faces: &[Face],
    selected: Option<usize>,
    overlay: OverlayOptions,
    transform: &mut ViewTransform,
    map: Option<&MapOverlay>,
    gpu: bool,
    slot: usize,
) -> Option<usize> {
    let (view, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
    if response.dragged() {
        transform.pan += response.drag_delta();
    }
    if response.double_clicked() {
        *transform = ViewTransform::default();
    }
    if response.hovered() {
        let (scroll, zoom_delta) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
        let factor = zoom_delta * (scroll / 200.0).exp();
        if (factor - 1.0).abs() > 1e-4 {
            // Zoom about the pointer, so the pixel under it stays put.
            let pointer = response.hover_pos().unwrap_or(view.center());
            let new_zoom = (transform.zoom * factor).clamp(0.1, 64.0);
            let k = new_zoom / transform.zoom;
            let from_center = pointer - view.center() - transform.pan;
            transform.pan -= from_center * (k - 1.0);
            transform.zoom = new_zoom;
        }
    }
    let to_screen = screen_from_frame(view, frame_size, transform);
    let painter = ui.painter_at(view);
    painter.rect_filled(view, 0.0, Color32::from_gray(20));
    let image_rect = Rect::from_min_max(to_screen(Pos2::ZERO), to_screen(frame_size.to_pos2()));
    painter.image(
        texture.id(),
        image_rect,
        Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
        Color32::WHITE,
    );
    if let Some(m) = map {
        let corners = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]].map(|c| {
            let [x, y] = m.roi.frame_from_crop(c);
            to_screen(Pos2::new(x, y))
        });
        if gpu {
            painter.add(paint_callback(
                view,
                OverlayDraw { map: m.map.clone(), colormap: m.style.colormap, opacity: m.style.opacity, range: m.style.range, corners },
                slot,
            ));
        } else {
            // No wgpu renderer (or the pipeline failed): colour on the CPU,
            // let egui's linear sampler upsample. The crops are upright.
            let (w, h) = (m.map.width as usize, m.map.height as usize);
            let alpha = (m.style.opacity.clamp(0.0, 1.0) * 255.0).round() as u8;
            let rgba: Vec<u8> = m
                .map
                .values
                .iter()
                .flat_map(|&v| {
                    let [r, g, b] = m.style.colormap.lut_color(m.style.normalise(v));
                    [r, g, b, alpha]
                })
                .collect();
            let tex = ui.ctx().load_texture("explain-map", ColorImage::from_rgba_unmultiplied([w, h], &rgba), TextureOptions::LINEAR);
            painter.image(tex.id(), Rect::from_two_pos(corners[0], corners[3]), Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)), Color32::WHITE);
        }
    }

    let mut clicked = None;
    for (i, face) in faces.iter().enumerate() {
        let color = if Some(i) == selected {
            Color32::from_rgb(255, 200, 0)
        } else {
            Color32::from_rgb(0, 220, 120)
        };
        let b = face.detection.bbox;
        let rect = Rect::from_min_max(
            to_screen(Pos2::new(b[0], b[1])),
            to_screen(Pos2::new(b[2], b[3])),
        );
        if overlay.boxes {
            painter.rect_stroke(rect, 0.0, Stroke::new(2.0, color), egui::StrokeKind::Middle);
            painter.text(
                rect.left_top() - Vec2::new(0.0, 2.0),
                egui::Align2::LEFT_BOTTOM,
                format!("face {} {:.2}", i + 1, face.detection.score),
                egui::FontId::proportional(13.0),
                color,
            );
        }
        if overlay.landmarks {
            let radius = (rect.width() / 120.0).clamp(1.2, 4.0);
            for p in &face.landmarks68 {
                painter.circle_filled(
                    to_screen(Pos2::new(p[0], p[1])),
                    radius,
                    Color32::from_rgb(255, 60, 60),
                );
            }
        }
        if response.clicked()
            && response
                .interact_pointer_pos()
                .is_some_and(|p| rect.contains(p))
        {
            clicked = Some(i);
        }
    }
    clicked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_centres_the_frame() {
        let view = Rect::from_min_size(Pos2::ZERO, Vec2::new(200.0, 100.0));
        let f = screen_from_frame(view, Vec2::new(100.0, 100.0), &ViewTransform::default());
        assert_eq!(f(Pos2::ZERO), Pos2::new(50.0, 0.0));
        assert_eq!(f(Pos2::new(100.0, 100.0)), Pos2::new(150.0, 100.0));
    }
}
