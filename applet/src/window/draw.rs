//! Draws the [`Model`] with egui, top to bottom in the order the end user
//! needs it: who is helping; how the session goes; the code; the
//! technician's question (framed in yellow, two big buttons); what is
//! allowed and runs (with buttons to take back and to stop); files with
//! progress bars; the messages and a box to write; and along the bottom
//! the one red button that ends everything. Every text is a label the
//! accessibility tree carries, so screen readers — and the tests — read
//! what is on screen.

use super::Shared;
use super::model::{Model, State, Who};
use crate::run::Input;
use crate::words::Label;
use eframe::egui::{self, Color32, RichText, ViewportCommand};
use tokio::sync::mpsc;

const RED: Color32 = Color32::from_rgb(0xb0, 0x1c, 0x2e);
const GREEN: Color32 = Color32::from_rgb(0x1b, 0x7a, 0x3a);
const AMBER: Color32 = Color32::from_rgb(0x9a, 0x5b, 0x00);
const QUESTION_FILL: Color32 = Color32::from_rgb(0xff, 0xf4, 0xc2);
const BIG: f32 = 20.0;

/// The window's own state around the model: what is being typed, and
/// whether the end user is being asked to confirm the end.
#[derive(Debug)]
pub struct Window {
    shared: Shared,
    input: mpsc::Sender<Input>,
    draft: String,
    asking_end: bool,
    ending: bool,
    close_when_done: bool,
    titled: bool,
}

impl Window {
    /// A window showing `shared`, sending clicks to `input`.
    pub fn new(shared: Shared, input: mpsc::Sender<Input>) -> Window {
        Window {
            shared,
            input,
            draft: String::new(),
            asking_end: false,
            ending: false,
            close_when_done: false,
            titled: false,
        }
    }

    fn send(&self, input: Input) {
        if let Err(e) = self.input.try_send(input) {
            tracing::info!(error = %e, "the window's input was not taken");
        }
    }

    fn end(&mut self) {
        self.asking_end = false;
        self.ending = true;
        self.send(Input::End);
    }
}

impl eframe::App for Window {
    fn update(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        let ctx = ctx.clone();
        let Some(m) = self.shared.snapshot() else {
            return;
        };
        if ctx.input(|i| i.viewport().close_requested()) && !m.finished {
            // Closing the window ends the session — after asking.
            ctx.send_viewport_cmd(ViewportCommand::CancelClose);
            if !self.ending {
                self.asking_end = true;
            }
            self.close_when_done = true;
        }
        if !self.titled && !m.operator.is_empty() {
            self.titled = true;
            ctx.send_viewport_cmd(ViewportCommand::Title(title(&m)));
        }
        if m.finished && self.close_when_done && !self.asking_end {
            ctx.send_viewport_cmd(ViewportCommand::Close);
        }
        egui::TopBottomPanel::top("who").show(&ctx, |ui| header(ui, &m));
        egui::TopBottomPanel::bottom("end").show(&ctx, |ui| self.bottom(ui, &m));
        egui::CentralPanel::default().show(&ctx, |ui| {
            state(ui, &m);
            if let Some(code) = m.code.as_ref().filter(|_| !m.over()) {
                code_box(ui, &m, code);
            }
            if let Some(question) = &m.question {
                self.question(ui, &m, question);
            }
            self.granted(ui, &m);
            transfers(ui, &m);
            // Messages once there is someone to write to (or something
            // to read).
            if m.connected() || matches!(m.state, State::Reconnecting(_)) || !m.history.is_empty() {
                self.messages(ui, &m);
            }
        });
        if self.asking_end {
            self.ask_end(&ctx, &m);
        }
    }
}

impl Window {
    fn bottom(&mut self, ui: &mut egui::Ui, m: &Model) {
        ui.add_space(8.0);
        let width = ui.available_width();
        if m.finished || (m.over() && !self.ending) {
            let close = egui::Button::new(RichText::new(m.label(&Label::Close)).size(BIG))
                .min_size(egui::vec2(width, 44.0));
            if ui.add(close).clicked() {
                ui.ctx().send_viewport_cmd(ViewportCommand::Close);
            }
        } else if self.ending {
            ui.add_sized(
                [width, 44.0],
                egui::Label::new(RichText::new(m.label(&Label::Ending)).size(BIG)),
            );
        } else {
            let end = egui::Button::new(
                RichText::new(m.label(&Label::EndSession))
                    .size(BIG)
                    .strong()
                    .color(Color32::WHITE),
            )
            .fill(RED)
            .min_size(egui::vec2(width, 48.0));
            if ui.add(end).clicked() {
                self.asking_end = true;
            }
        }
        ui.add_space(8.0);
    }

    fn ask_end(&mut self, ctx: &egui::Context, m: &Model) {
        egui::Modal::new(egui::Id::new("ask-end")).show(ctx, |ui| {
            ui.set_max_width(360.0);
            ui.label(RichText::new(m.label(&Label::AskEnd)).size(16.0));
            ui.add_space(12.0);
            ui.horizontal(|ui| {
                let yes = egui::Button::new(
                    RichText::new(m.label(&Label::AskEndYes))
                        .strong()
                        .color(Color32::WHITE),
                )
                .fill(RED)
                .min_size(egui::vec2(150.0, 36.0));
                if ui.add(yes).clicked() {
                    self.end();
                }
                let no =
                    egui::Button::new(m.label(&Label::AskEndNo)).min_size(egui::vec2(150.0, 36.0));
                if ui.add(no).clicked() {
                    self.asking_end = false;
                    self.close_when_done = false;
                }
            });
        });
        // Escape is "no". (A click beside the question is not: the click
        // that opened it can still count as one in the question's first
        // frame, and would close it before anyone saw it.)
        if self.asking_end && ctx.input(|i| i.key_pressed(egui::Key::Escape)) {
            self.asking_end = false;
            self.close_when_done = false;
        }
    }

    fn question(&mut self, ui: &mut egui::Ui, m: &Model, question: &[String]) {
        ui.add_space(8.0);
        egui::Frame::group(ui.style())
            .fill(QUESTION_FILL)
            .stroke(egui::Stroke::new(2.0, AMBER))
            .inner_margin(12.0)
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(
                    RichText::new(m.label(&Label::QuestionTitle))
                        .size(18.0)
                        .strong()
                        .color(Color32::BLACK),
                );
                for line in question {
                    ui.label(RichText::new(line).color(Color32::BLACK));
                }
                ui.add_space(6.0);
                ui.horizontal(|ui| {
                    let allow = egui::Button::new(
                        RichText::new(m.label(&Label::Allow))
                            .size(18.0)
                            .strong()
                            .color(Color32::WHITE),
                    )
                    .fill(GREEN)
                    .min_size(egui::vec2(140.0, 40.0));
                    if ui.add(allow).clicked() {
                        self.send(Input::Answer(true));
                    }
                    let deny = egui::Button::new(
                        RichText::new(m.label(&Label::Deny))
                            .size(18.0)
                            .color(Color32::BLACK),
                    )
                    .fill(Color32::from_gray(230))
                    .min_size(egui::vec2(140.0, 40.0));
                    if ui.add(deny).clicked() {
                        self.send(Input::Answer(false));
                    }
                });
            });
    }

    fn granted(&mut self, ui: &mut egui::Ui, m: &Model) {
        let o = &m.overview;
        if m.over() || (o.granted.is_empty() && o.running.is_empty()) {
            return;
        }
        ui.add_space(8.0);
        ui.horizontal_wrapped(|ui| {
            ui.label(m.label(&Label::Granted(o.granted)));
            if !o.granted.is_empty() && ui.button(m.label(&Label::TakeBack)).clicked() {
                self.send(Input::Withdraw(String::new()));
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.label(m.label(&Label::Running(o.running.clone())));
            if !o.running.is_empty() && ui.button(m.label(&Label::StopRunning)).clicked() {
                self.send(Input::Stop);
            }
        });
    }

    fn messages(&mut self, ui: &mut egui::Ui, m: &Model) {
        ui.add_space(8.0);
        ui.separator();
        ui.label(RichText::new(m.label(&Label::Messages)).strong());
        let row = if m.over() { 0.0 } else { 36.0 };
        egui::ScrollArea::vertical()
            .stick_to_bottom(true)
            .auto_shrink([false, false])
            .max_height((ui.available_height() - row).max(40.0))
            .show(ui, |ui| {
                for e in &m.history {
                    match &e.who {
                        Who::Technician(name) => {
                            ui.label(RichText::new(format!("{name}: {}", e.text)).strong())
                        }
                        Who::You => ui.label(format!("{}: {}", m.label(&Label::You), e.text)),
                        Who::Notice => ui.label(RichText::new(&e.text).italics().weak()),
                    };
                }
            });
        if m.over() {
            return;
        }
        ui.horizontal(|ui| {
            let can = m.connected();
            let name = ui.label(m.label(&Label::YourMessage));
            let hint = if can {
                String::new()
            } else {
                m.label(&Label::NothingToSendYet)
            };
            let send_width = 100.0;
            let edit = ui
                .add_enabled(
                    can,
                    egui::TextEdit::singleline(&mut self.draft)
                        .hint_text(hint)
                        .desired_width(ui.available_width() - send_width),
                )
                .labelled_by(name.id);
            let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let send = ui
                .add_enabled(
                    can,
                    egui::Button::new(m.label(&Label::Send)).min_size(egui::vec2(80.0, 0.0)),
                )
                .clicked();
            if (enter || send) && can && !self.draft.trim().is_empty() {
                let text = std::mem::take(&mut self.draft);
                self.shared.change(|m| m.sent(text.trim()));
                self.send(Input::Line(text.trim().to_owned()));
                edit.request_focus();
            }
        });
    }
}

/// The window's title: what it is, and from which company.
pub fn title(m: &Model) -> String {
    format!("{} – {}", m.label(&Label::Title), m.operator)
}

fn header(ui: &mut egui::Ui, m: &Model) {
    ui.add_space(8.0);
    let mut lines = m.greeting.iter();
    if let Some(first) = lines.next() {
        ui.label(RichText::new(first).size(BIG).strong());
    }
    for line in lines {
        ui.label(line);
    }
    if let Some(warning) = &m.unverified {
        ui.label(RichText::new(warning).color(RED).strong());
    }
    ui.add_space(6.0);
}

fn state(ui: &mut egui::Ui, m: &Model) {
    ui.add_space(6.0);
    let (text, color) = match &m.state {
        State::Looking => (m.label(&Label::Looking), AMBER),
        State::Trouble(s) => (s.clone(), RED),
        State::Waiting(s) => (s.clone(), AMBER),
        State::Connected(path) => (
            m.label(&Label::ConnectedVia {
                technician: m.technician.clone(),
                path: *path,
            }),
            GREEN,
        ),
        State::Reconnecting(s) => (s.clone(), AMBER),
        State::Over(lines) => (lines.join("\n"), RED),
    };
    ui.label(RichText::new(text).size(18.0).strong().color(color));
}

fn code_box(ui: &mut egui::Ui, m: &Model, code: &str) {
    ui.add_space(8.0);
    egui::Frame::group(ui.style())
        .inner_margin(10.0)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(RichText::new(m.label(&Label::CodeTitle)).strong());
            ui.label(RichText::new(code).size(32.0).monospace().strong());
            ui.label(m.label(&Label::CodeHint));
        });
}

fn transfers(ui: &mut egui::Ui, m: &Model) {
    if m.transfers.is_empty() {
        return;
    }
    ui.add_space(8.0);
    ui.label(RichText::new(m.label(&Label::Files)).strong());
    for t in &m.transfers {
        let text = match &t.outcome {
            Some((words, _)) => words.clone(),
            None => t.words.clone(),
        };
        ui.add(egui::ProgressBar::new(t.fraction()).text(t.name.clone()));
        let failed = t.outcome.as_ref().is_some_and(|(_, ok)| !*ok);
        ui.label(if failed {
            RichText::new(text).color(RED)
        } else {
            RichText::new(text)
        });
    }
}
