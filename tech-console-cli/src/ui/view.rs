//! Drawing the full-screen console. Everything that comes from the other
//! end or the gateway was neutralized before it got into the model; here
//! it is only laid out.
//!
//! ```text
//!  Queue 1 │ 1 printer │ 2 laptop*                       (tabs; * attention)
//!  printer · live · tcp 1.2 ms · ↑ 2 KB ↓ 30 MB · code …    (status)
//!  conversation                          │ Transfers
//!  ──────────────── shell ────────────── │ System
//!  (the end user's command prompt)       │ Notes
//!  > the line being typed                                  (input)
//!  Enter send · /help · F2 shell · …                       (keys)
//! ```

use super::app::{App, Focus, Mode};
use super::tab::{Tab, Transfer, Who};
use lifeline_remote::transfer::human_size;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Areas {
    /// The tab bar.
    pub tabs: Rect,
    /// The session's status line.
    pub status: Rect,
    /// The conversation (or the queue).
    pub main: Rect,
    /// The shell's screen (inside its frame).
    pub shell: Rect,
    /// The shell's frame.
    pub shell_frame: Rect,
    /// Transfers, system information, notes.
    pub side: Rect,
    /// The input line.
    pub input: Rect,
    /// The keys line.
    pub keys: Rect,
}

/// Below this width the side panel goes (the conversation needs room).
const SIDE_MIN_WIDTH: u16 = 72;
/// The side panel's width.
const SIDE: u16 = 28;

/// The layout for `area`; `shell`: whether the tab in front shows its
/// shell pane.
pub fn areas(area: Rect, app: &App, shell: bool) -> Areas {
    let [tabs, body, input, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut a = Areas {
        tabs,
        input,
        keys,
        ..Areas::default()
    };
    if app.focus == Focus::Queue {
        a.main = body;
        return a;
    }
    if shell && app.shell_full {
        a.shell_frame = body;
        a.shell = inner(body);
        return a;
    }
    let [status, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(body);
    a.status = status;
    let left = if rest.width >= SIDE_MIN_WIDTH {
        let [l, s] = Layout::horizontal([Constraint::Min(1), Constraint::Length(SIDE)]).areas(rest);
        a.side = s;
        l
    } else {
        rest
    };
    if shell {
        let [c, s] =
            Layout::vertical([Constraint::Percentage(35), Constraint::Percentage(65)]).areas(left);
        a.main = c;
        a.shell_frame = s;
        a.shell = inner(s);
    } else {
        a.main = left;
    }
    a
}

fn inner(r: Rect) -> Rect {
    Block::default().borders(Borders::ALL).inner(r)
}

/// Whether the tab in front shows its shell.
pub fn shows_shell(app: &App) -> bool {
    app.current()
        .and_then(|t| t.shell.as_ref())
        .is_some_and(|s| s.open)
}

struct Look {
    color: bool,
}

impl Look {
    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    fn strong(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }
    fn front(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
    fn dim(&self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default()
        }
    }
}

/// Draws the whole console.
pub fn draw(f: &mut Frame<'_>, app: &App) {
    let look = Look { color: app.color };
    let shell = shows_shell(app);
    let a = areas(f.area(), app, shell);
    tab_bar(f, app, &look, a.tabs);
    match app.current() {
        None => queue(f, app, &look, a.main),
        Some(t) => {
            if a.status.height > 0 {
                status(f, t, &look, a.status);
            }
            if a.main.height > 0 {
                conversation(f, t, &look, a.main);
            }
            if shell {
                shell_pane(f, app, t, &look, a.shell_frame);
            }
            if a.side.width > 0 {
                side(f, t, &look, a.side);
            }
        }
    }
    input(f, app, &look, a.input);
    keys(f, app, &look, a.keys);
    match app.mode {
        Mode::Help => overlay(f, "help — any key closes it", &App::help()),
        Mode::ConfirmQuit => overlay(
            f,
            "quit?",
            &format!(
                "{} session(s) are open. End them all and quit?\n\n  y  yes, end them and quit\n  n  no, go back",
                app.open_sessions()
            ),
        ),
        _ => {}
    }
}

fn tab_bar(f: &mut Frame<'_>, app: &App, look: &Look, r: Rect) {
    let mark = |on: bool| if on { "*" } else { "" };
    let style = |front: bool, attention: bool| {
        let mut s = if attention {
            look.strong().patch(look.fg(Color::Yellow))
        } else {
            Style::default()
        };
        if front {
            s = s.patch(look.front());
        }
        s
    };
    let queue = Span::styled(
        format!(" Queue {}{} ", app.queue.len(), mark(app.queue_attention)),
        style(app.focus == Focus::Queue, app.queue_attention),
    );
    // Each tab in full; if they do not all fit, the ones not in front by
    // number only; if even that is too wide, a window around the front one.
    let label = |i: usize, t: &Tab, full: bool| {
        let ended = if t.stage.is_open() { "" } else { " (ended)" };
        if full {
            format!(
                " {} {}{}{} ",
                i + 1,
                clip(&t.title(), 16),
                ended,
                mark(t.attention)
            )
        } else {
            format!(" {}{} ", i + 1, mark(t.attention))
        }
    };
    let width = r.width as usize;
    let used = queue.content.chars().count();
    let full: Vec<String> = app
        .tabs
        .iter()
        .enumerate()
        .map(|(i, t)| label(i, t, true))
        .collect();
    let total: usize = full.iter().map(|l| l.chars().count() + 1).sum();
    let labels: Vec<String> = if used + total <= width {
        full
    } else {
        app.tabs
            .iter()
            .enumerate()
            .map(|(i, t)| label(i, t, app.focus == Focus::Tab(i)))
            .collect()
    };
    let mut first = 0;
    if let Focus::Tab(front) = app.focus {
        let len = |a: usize, b: usize| -> usize {
            labels[a..=b]
                .iter()
                .map(|l| l.chars().count() + 1)
                .sum::<usize>()
                + 2
        };
        while first < front && used + len(first, front) > width {
            first += 1;
        }
    }
    let mut spans = vec![queue];
    if first > 0 {
        spans.push(Span::raw("‹"));
    }
    for (i, l) in labels.into_iter().enumerate().skip(first) {
        spans.push(Span::raw("│"));
        let t = &app.tabs[i];
        spans.push(Span::styled(
            l,
            style(app.focus == Focus::Tab(i), t.attention),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), r);
}

fn queue(f: &mut Frame<'_>, app: &App, look: &Look, r: Rect) {
    let now = lifeline_session::now_ms();
    let mut lines = vec![Line::styled(
        format!(
            "{:<2}{:<20} {:<9} {:<22} {}",
            "", "WHO / LABEL", "WAITING", "FROM", "NODE"
        ),
        look.strong(),
    )];
    if app.queue.is_empty() {
        lines.push(Line::raw("  nobody is waiting"));
    }
    for (i, s) in app.queue.iter().enumerate() {
        let since = s
            .waiting_since_ms
            .map(|t| lifeline_protocol::time::human_duration(now - t))
            .unwrap_or_else(|| "-".into());
        let who = if s.label.is_empty() {
            s.guid.to_string()
        } else {
            s.label.clone()
        };
        let row = format!(
            "{:<2}{:<20} {:<9} {:<22} {}",
            if i == app.queue_selected { ">" } else { "" },
            clip(&shown(&who), 20),
            since,
            clip(&shown(s.waiting_from.as_deref().unwrap_or("-")), 22),
            shown(s.waiting_node.as_deref().unwrap_or("-"))
        );
        let style = if i == app.queue_selected {
            look.front()
        } else {
            Style::default()
        };
        lines.push(Line::styled(row, style));
        // A channel's end user: anyone in the group may take them.
        if let Some(channel) = &s.channel {
            let about = if s.problem.is_empty() {
                String::new()
            } else {
                format!(": {}", s.problem)
            };
            lines.push(Line::styled(
                clip(&shown(&format!("  ↳ channel {channel}{about}")), 78),
                look.dim(),
            ));
        }
        // A colleague hands this end user over: Enter takes them.
        if s.transfer.is_some() {
            let from = if s.technician_name.is_empty() {
                &s.technician
            } else {
                &s.technician_name
            };
            lines.push(Line::styled(
                clip(&shown(&format!("  ↳ handed over by {from}")), 78),
                look.dim(),
            ));
        }
    }
    lines.push(Line::raw(""));
    if let Some(e) = &app.queue_error {
        lines.push(Line::styled(
            format!("the queue could not be read: {}", shown(e)),
            look.fg(Color::Red),
        ));
    }
    if let Some(m) = &app.queue_message {
        lines.push(Line::styled(shown(m), look.fg(Color::Yellow)));
    }
    let open = app.open_sessions();
    lines.push(Line::styled(
        format!(
            "{} · {open} session{} open",
            app.whoami,
            if open == 1 { "" } else { "s" }
        ),
        look.dim(),
    ));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), r);
}

fn status(f: &mut Frame<'_>, t: &Tab, look: &Look, r: Rect) {
    let mut parts = vec![t.title(), t.stage.words().to_owned()];
    if let super::tab::Stage::Ended(why) = &t.stage {
        parts.push(why.clone());
    }
    if !t.path.words.is_empty() && t.stage.is_open() {
        let rtt = t
            .path
            .rtt
            .map(|d| format!(" {} ms", crate::connect::ms(d)))
            .unwrap_or_default();
        parts.push(format!(
            "{}{rtt}",
            t.path.kind.map_or("?", |k| path_name(k.as_str()))
        ));
    }
    let (sent, received) = t.controls.traffic.get();
    parts.push(format!("↑ {} ↓ {}", human_size(sent), human_size(received)));
    if let Some(sas) = &t.sas {
        parts.push(format!("code {sas}"));
    }
    parts.push(if t.granted.is_empty() {
        "granted: chat only".to_owned()
    } else {
        format!("granted: {}", t.granted.join(", "))
    });
    let style = if t.stage.is_open() {
        look.strong()
    } else {
        look.dim()
    };
    f.render_widget(
        Paragraph::new(Line::styled(shown(&parts.join(" · ")), style)),
        r,
    );
}

/// The path's name as technicians know it.
fn path_name(kind: &str) -> &'static str {
    match kind {
        "tcp" => "direct TCP",
        "udp" => "XTCP",
        _ => "relay",
    }
}

fn conversation(f: &mut Frame<'_>, t: &Tab, look: &Look, r: Rect) {
    let width = r.width.max(10) as usize;
    let mut lines: Vec<Line<'_>> = Vec::new();
    for s in &t.chat {
        let (who, style) = match s.who {
            Who::Me => ("you: ", look.fg(Color::Cyan)),
            Who::User => ("end user: ", look.strong().patch(look.fg(Color::Green))),
            Who::Session => ("· ", look.dim()),
            Who::Console => ("! ", look.fg(Color::Yellow)),
        };
        // Continuation lines are indented by two, so all wrap two
        // narrower.
        for (n, piece) in wrap(&format!("{who}{}", s.text), width.saturating_sub(2))
            .into_iter()
            .enumerate()
        {
            let piece = if n == 0 { piece } else { format!("  {piece}") };
            lines.push(Line::styled(piece, style));
        }
    }
    let height = r.height as usize;
    let end = lines.len().saturating_sub(t.scroll.min(lines.len()));
    let start = end.saturating_sub(height);
    let mut shown_lines: Vec<Line<'_>> = lines.drain(start..end).collect();
    if t.scroll > 0 && !shown_lines.is_empty() {
        shown_lines.pop();
        shown_lines.push(Line::styled(
            format!("— {} more below (PgDn) —", t.scroll),
            look.dim(),
        ));
    }
    f.render_widget(Paragraph::new(shown_lines), r);
}

fn shell_pane(f: &mut Frame<'_>, app: &App, t: &Tab, look: &Look, r: Rect) {
    let Some(s) = &t.shell else { return };
    let focus = app.mode == Mode::Shell;
    let title = if focus {
        " shell · keys go here · F2 chat · F3 full · Ctrl-] close "
    } else {
        " shell · F2 to type here · F3 full "
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(if focus {
            look.strong().patch(look.fg(Color::Cyan))
        } else {
            look.dim()
        });
    let widget = tui_term::widget::PseudoTerminal::new(s.parser.screen()).block(block);
    f.render_widget(widget, r);
    if focus {
        let (row, col) = s.parser.screen().cursor_position();
        let inner = inner(r);
        if row < inner.height && col < inner.width {
            f.set_cursor_position((inner.x + col, inner.y + row));
        }
    }
}

fn side(f: &mut Frame<'_>, t: &Tab, look: &Look, r: Rect) {
    let width = r.width.saturating_sub(2) as usize;
    let running: Vec<&Transfer> = t.transfers.iter().rev().take(4).collect();
    let transfer_rows = (running.len().max(1) * 2) as u16 + 2;
    let [tr, sys, notes] = Layout::vertical([
        Constraint::Length(transfer_rows),
        Constraint::Min(3),
        Constraint::Min(3),
    ])
    .areas(r);
    let mut lines = Vec::new();
    if running.is_empty() {
        lines.push(Line::styled("none (/send, /fetch)", look.dim()));
    }
    for x in running.iter().rev() {
        let arrow = if x.outgoing { "↑" } else { "↓" };
        lines.push(Line::raw(clip(&format!("{arrow} {}", x.name), width)));
        lines.push(Line::raw(progress_line(x, width)));
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Transfers ")),
        tr,
    );
    let sys_text = t
        .sysinfo
        .clone()
        .unwrap_or_else(|| "not asked yet (/sysinfo)".into());
    f.render_widget(
        Paragraph::new(sys_text)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" System ")),
        sys,
    );
    let notes_text = if t.notes.is_empty() {
        "none yet (F4 or /note TEXT)".to_owned()
    } else {
        // The newest lines, without their date.
        let all: Vec<&str> = t.notes.lines().collect();
        let keep = notes.height.saturating_sub(2) as usize;
        all[all.len().saturating_sub(keep)..]
            .iter()
            .map(|l| l.split_once("  ").map_or(*l, |(_, text)| text))
            .collect::<Vec<_>>()
            .join("\n")
    };
    f.render_widget(
        Paragraph::new(notes_text)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Notes ")),
        notes,
    );
}

/// `████░░░░ 45% 1.2 MB/s 10 s` or how it ended.
pub fn progress_line(x: &Transfer, width: usize) -> String {
    let pct = (x.ratio() * 100.0).round() as u32;
    let tail = if x.is_running() {
        let eta = x.eta_secs.map(|s| format!(" {s:.0}s")).unwrap_or_default();
        format!(" {pct}% {}/s{eta}", human_size(x.rate as u64))
    } else {
        format!(" {pct}% {}", x.state)
    };
    let bar = width.saturating_sub(tail.chars().count()).clamp(4, 40);
    let filled = ((bar as f64) * x.ratio()).round() as usize;
    clip(
        &format!("{}{}{tail}", "█".repeat(filled), "░".repeat(bar - filled)),
        width,
    )
}

fn input(f: &mut Frame<'_>, app: &App, look: &Look, r: Rect) {
    let editor = match app.current() {
        Some(t) => &t.editor,
        None => &app.queue_editor,
    };
    let prompt = if app.mode == Mode::Shell { "  " } else { "> " };
    let (text, at) = editor.visible(r.width.saturating_sub(3) as usize);
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(prompt, look.strong()),
            Span::raw(text),
        ])),
        r,
    );
    if app.mode == Mode::Normal {
        f.set_cursor_position((r.x + 2 + at as u16, r.y));
    }
}

fn keys(f: &mut Frame<'_>, app: &App, look: &Look, r: Rect) {
    let text = match (app.mode, app.focus) {
        (Mode::Shell, _) => {
            "keys go to the shell · F2 back to the chat · F3 full screen · Ctrl-] close it"
        }
        (_, Focus::Queue) => {
            "↑↓ choose · Enter take · Alt-1…9 tabs · Ctrl-N/P next · F1 help · Ctrl-Q quit"
        }
        (_, Focus::Tab(_)) => {
            "Enter send · F1 help · F2 shell · F3 full · F4 note · Alt-0 queue · Ctrl-Q quit"
        }
    };
    f.render_widget(
        Paragraph::new(Line::styled(clip(text, r.width as usize), look.dim())),
        r,
    );
}

fn overlay(f: &mut Frame<'_>, title: &str, text: &str) {
    let area = f.area();
    let lines = text.lines().count() as u16 + 2;
    let width =
        (text.lines().map(|l| l.chars().count()).max().unwrap_or(0) as u16 + 4).min(area.width);
    let height = lines.min(area.height);
    let r = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(text.to_owned())
            .wrap(Wrap { trim: false })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" {title} ")),
            ),
        r,
    );
}

/// Text from elsewhere, safe to draw.
fn shown(s: &str) -> String {
    lifeline_protocol::text::neutralize(s).into_owned()
}

/// At most `n` characters; a cut is marked with `…`.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `s` broken into lines of at most `width` characters, at spaces where
/// it can.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    let mut len = 0;
    for word in s.split(' ') {
        let wlen = word.chars().count();
        if len > 0 && len + 1 + wlen > width {
            out.push(std::mem::take(&mut line));
            len = 0;
        }
        if len > 0 {
            line.push(' ');
            len += 1;
        }
        let mut rest: Vec<char> = word.chars().collect();
        while len + rest.len() > width {
            let take = width - len;
            line.extend(rest.drain(..take));
            out.push(std::mem::take(&mut line));
            len = 0;
        }
        len += rest.len();
        line.extend(rest);
    }
    out.push(line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_every_character() {
        let s = "the printer on the second floor says PC LOAD LETTER againandagainandagain";
        let w = wrap(s, 12);
        assert!(w.iter().all(|l| l.chars().count() <= 12));
        assert_eq!(w.join(" ").replace(' ', ""), s.replace(' ', ""));
    }
}
