//! The applet's window: who is helping, the code, how the session goes,
//! the technician's questions with buttons to answer, what runs, files on
//! their way, the messages, and one big button to end it all.
//!
//! * [`model`] — what the window shows, as data, fed with the same
//!   [`Line`]s the terminal prints.
//! * [`draw`] — draws it with egui and turns clicks into the session's
//!   [`Input`]s.
//! * [`platform`] — whether there is a desktop, and how to draw on it.
//!
//! The window runs on the main thread (as every desktop wants); the
//! session runs on its own thread and reaches the window through
//! [`Shared`], which wakes the window when something changed.

pub mod draw;
pub mod model;
pub mod platform;

use crate::run::Input;
use crate::words::Line;
use model::Model;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::mpsc;

/// The window's state, shared between the session (which shows lines) and
/// the window (which draws them).
#[derive(Clone, Debug)]
pub struct Shared {
    model: Arc<Mutex<Model>>,
    wake: Arc<OnceLock<eframe::egui::Context>>,
}

impl Shared {
    /// A window that has shown nothing yet.
    pub fn new(model: Model) -> Shared {
        Shared {
            model: Arc::new(Mutex::new(model)),
            wake: Arc::new(OnceLock::new()),
        }
    }

    /// Takes in `line` and redraws.
    pub fn apply(&self, line: &Line) {
        self.change(|m| m.apply(line));
    }

    /// The session's program is done.
    pub fn finish(&self) {
        self.change(|m| m.finished = true);
    }

    /// Changes the model and redraws.
    pub fn change(&self, f: impl FnOnce(&mut Model)) {
        if let Ok(mut m) = self.model.lock() {
            f(&mut m);
        }
        if let Some(ctx) = self.wake.get() {
            ctx.request_repaint();
        }
    }

    /// A copy of what to draw.
    pub fn snapshot(&self) -> Option<Model> {
        self.model.lock().ok().map(|m| m.clone())
    }
}

/// The one font the window draws with (see `applet/fonts/README.md`).
fn fonts() -> eframe::egui::FontDefinitions {
    use eframe::egui::{FontData, FontDefinitions, FontFamily};
    let mut fonts = FontDefinitions::empty();
    fonts.font_data.insert(
        "ubuntu-light".into(),
        Arc::new(FontData::from_static(include_bytes!(
            "../../fonts/Ubuntu-Light.ttf"
        ))),
    );
    for family in [FontFamily::Proportional, FontFamily::Monospace] {
        fonts.families.insert(family, vec!["ubuntu-light".into()]);
    }
    fonts
}

/// Opens the window and runs it until it is closed: when the session is
/// over and the end user closes it, or after they asked to end the session
/// by closing it. Clicks become `input`. An error means no window could
/// be opened (no usable display or graphics): the terminal still works.
pub fn run(shared: Shared, input: mpsc::Sender<Input>) -> Result<(), String> {
    // The company joins the title once the session has read it (see
    // `draw::title`).
    let title = shared
        .snapshot()
        .ok_or("the window's state is poisoned")?
        .label(&crate::words::Label::Title);
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title(title.clone())
            .with_app_id("lifeline-applet")
            .with_inner_size([520.0, 680.0])
            .with_min_inner_size([400.0, 480.0]),
        renderer: platform::renderer(),
        centered: true,
        ..Default::default()
    };
    eframe::run_native(
        &title,
        options,
        Box::new(move |cc| {
            let _ = shared.wake.set(cc.egui_ctx.clone());
            // Light, whatever the desktop's theme: the colours of the
            // states and the question are chosen for it.
            cc.egui_ctx.set_theme(eframe::egui::Theme::Light);
            cc.egui_ctx.set_fonts(fonts());
            Ok(Box::new(draw::Window::new(shared, input)))
        }),
    )
    .map_err(|e| e.to_string())
}
