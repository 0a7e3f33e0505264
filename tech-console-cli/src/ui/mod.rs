//! `tech-console ui`: the full-screen console for a shift with several end
//! users — the waiting queue, refreshed live, and a tab per session with
//! its conversation, path, grants, remote shell, transfers, system
//! information and notes.
//!
//! * [`app`] — the state and what each key does (no terminal, no network).
//! * [`tab`] — one session's tab, kept up to date from its updates.
//! * [`view`] — drawing it with ratatui.
//!
//! This module runs it: it takes the terminal (restored on every way out:
//! the end, an error, a panic, SIGTERM or SIGHUP), polls the queue, starts
//! sessions ([`crate::drive`]) and feeds keys and updates to the model.

pub mod app;
pub mod tab;
pub mod view;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use crate::drive::{self, Options, Update};
use crate::portal::portal;
use crate::profile::Profile;
use app::{Action, App, Focus};
use crossterm::event::Event as TermEvent;
use lifeline_protocol::portal::SessionList;
use lifeline_session::live::Command;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::time::Duration;
use tab::{Tab, Who};
use tokio::sync::mpsc;

/// How often the queue is asked for.
const QUEUE_EVERY: Duration = Duration::from_secs(2);
/// How long quitting waits for the sessions' ends to reach the end users.
const QUIT_WAIT: Duration = Duration::from_secs(5);

/// Runs the full-screen console until the technician quits. Returns the
/// exit code.
pub async fn run(profile: &Profile) -> anyhow::Result<i32> {
    let (login, client) = portal(profile)?;
    // A login that no longer works is said here, on the plain terminal.
    let first: SessionList = client.get("/api/v1/sessions/waiting").await?;
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut app = App::new(
        format!(
            "{} <{}> at {}",
            lifeline_protocol::text::neutralize(&login.name),
            lifeline_protocol::text::neutralize(&login.email),
            login.gateway
        ),
        color,
    );
    app.set_queue(Ok(first.sessions));

    let screen = crate::terminal::Screen::enter(true)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    let mut keys = crate::terminal::events();
    let (up_tx, mut updates) = mpsc::unbounded_channel::<(u64, Update)>();
    let (queue_tx, mut queue) = mpsc::channel(1);
    let poller = tokio::spawn(async move {
        loop {
            tokio::time::sleep(QUEUE_EVERY).await;
            let r: Result<SessionList, _> = client.get("/api/v1/sessions/waiting").await;
            if queue_tx
                .send(r.map(|l| l.sessions).map_err(|e| e.to_string()))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let terminated = crate::terminal::terminated();
    tokio::pin!(terminated);
    let mut next_id = 0u64;
    let mut title = String::new();
    let mut quit_by: Option<tokio::time::Instant> = None;

    loop {
        if let Some((w, h)) = crate::terminal::size() {
            app.screen = (w, h);
        }
        fit_shell(&mut app);
        terminal.draw(|f| view::draw(f, &app))?;
        let t = app.title();
        if t != title {
            let _ = crossterm::execute!(std::io::stdout(), crossterm::terminal::SetTitle(&t));
            title = t;
        }
        if quit_by.is_some() && app.open_sessions() == 0 {
            break;
        }
        let mut actions = Vec::new();
        tokio::select! {
            ev = keys.recv() => match ev {
                Some(TermEvent::Key(k)) => actions = app.key(k),
                Some(TermEvent::Paste(text)) => app.paste(&text),
                Some(_) => {}
                // The terminal is gone.
                None => actions.push(Action::Quit),
            },
            Some((id, u)) = updates.recv() => {
                take_update(&mut app, profile, id, u);
                // Whatever else already arrived, before drawing again.
                while let Ok((id, u)) = updates.try_recv() {
                    take_update(&mut app, profile, id, u);
                }
            }
            Some(q) = queue.recv() => app.set_queue(q),
            // Redrawn each second: waiting times and payload counters move.
            _ = tick.tick() => {}
            () = &mut terminated, if quit_by.is_none() => actions.push(Action::Quit),
            () = async { match quit_by { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => break,
        }
        for a in actions {
            match a {
                Action::Connect(target) => {
                    let (controls, mut rx) = drive::start(
                        profile.clone(),
                        drive::Target::Session(target.clone()),
                        Options::default(),
                    );
                    let id = next_id;
                    next_id += 1;
                    let tx = up_tx.clone();
                    tokio::spawn(async move {
                        while let Some(u) = rx.recv().await {
                            if tx.send((id, u)).is_err() {
                                break;
                            }
                        }
                    });
                    app.open_tab(Tab::new(id, target, controls));
                }
                Action::Note(guid, line) => {
                    if let Err(e) = profile.add_note(&guid, &line)
                        && let Some(t) = app.tabs.iter_mut().find(|t| t.guid == Some(guid))
                    {
                        t.say(Who::Console, &format!("the note was not saved: {e:#}"));
                    }
                }
                Action::Quit => {
                    for t in app.tabs.iter().filter(|t| t.stage.is_open()) {
                        t.controls
                            .command(Command::End("the technician closed the console".into()));
                    }
                    app.quitting = true;
                    quit_by = Some(tokio::time::Instant::now() + QUIT_WAIT);
                }
            }
        }
    }
    poller.abort();
    drop(terminal);
    drop(screen);
    let left = app.open_sessions();
    if left > 0 {
        eprintln!("{left} session(s) could not be told in time that the console closed");
    }
    Ok(0)
}

/// A session's update into its tab.
fn take_update(app: &mut App, profile: &Profile, id: u64, u: Update) {
    let Some(i) = app.tabs.iter().position(|t| t.id == id) else {
        return;
    };
    let found = matches!(u, Update::Found { .. });
    let attention = app.tabs[i].apply(u);
    if found {
        let t = &mut app.tabs[i];
        if let Some(g) = t.guid {
            t.notes = profile.notes(&g);
        }
    }
    if attention {
        app.mark(i);
    }
}

/// The shell pane's emulator and the end user's shell follow the pane's
/// size.
fn fit_shell(app: &mut App) {
    if !view::shows_shell(app) {
        return;
    }
    let (w, h) = app.screen;
    let r = view::areas(ratatui::layout::Rect::new(0, 0, w, h), app, true).shell;
    let size = (r.width.max(1), r.height.max(1));
    let Focus::Tab(i) = app.focus else { return };
    let t = &mut app.tabs[i];
    if let Some(s) = t.shell.as_mut()
        && s.told != size
    {
        s.parser.screen_mut().set_size(size.1, size.0);
        s.told = size;
        t.controls
            .request(lifeline_remote::console::Request::Resize {
                cols: size.0,
                rows: size.1,
            });
    }
}
