//! The full-screen console drawn on ratatui's test backend, compared with
//! snapshots in `snapshots/` (what a technician sees, as text). A changed
//! screen fails with the new one written next to the old as `*.new`;
//! `UPDATE_SNAPSHOTS=1` accepts it.

use super::app::{Action, App, Focus, Mode};
use super::tab::{Stage, Tab, Transfer, Who};
use super::view;
use crate::drive::{Controls, Update};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use lifeline_protocol::SessionGuid;
use lifeline_protocol::portal::SessionInfo;
use lifeline_session::live::Event;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Controls whose other ends are kept, to see what was sent.
struct Hands {
    controls: Controls,
    session: mpsc::UnboundedReceiver<lifeline_session::live::Command>,
    work: mpsc::UnboundedReceiver<lifeline_remote::console::Input>,
    handing: mpsc::UnboundedReceiver<Option<String>>,
}

fn hands() -> Hands {
    let (s, session) = mpsc::unbounded_channel();
    let (w, work) = mpsc::unbounded_channel();
    let (h, handing) = mpsc::unbounded_channel();
    Hands {
        controls: Controls {
            session: s,
            work: w,
            traffic: Arc::new(Default::default()),
            handing: h,
        },
        session,
        work,
        handing,
    }
}

fn guid(n: u8) -> SessionGuid {
    format!("{n:02x}345678-1234-4234-8234-123456789abc")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn waiting(n: u8, label: &str, ago_ms: i64, from: &str) -> SessionInfo {
    let now = lifeline_session::now_ms();
    SessionInfo {
        guid: guid(n),
        label: label.into(),
        technician: "ada@example.com".into(),
        state: "waiting".into(),
        created_at_ms: now - ago_ms - 60_000,
        expires_at_ms: now + 3_600_000,
        downloaded: true,
        permissions: String::new(),
        waiting_since_ms: Some(now - ago_ms),
        waiting_from: Some(from.into()),
        waiting_node: Some("gw-1".into()),
        waiting_node_addr: None,
        ended_reason: None,
        path: None,
        pin: None,
        pin_expires_at_ms: None,
        link: None,
        channel: None,
        problem: String::new(),
        technician_name: "Ada Lovelace".into(),
        transfer: None,
    }
}

/// A live tab with a conversation.
fn live_tab(id: u64, label: &str, controls: Controls) -> Tab {
    let mut t = Tab::new(id, label.into(), controls);
    t.apply(Update::Found {
        guid: guid(id as u8 + 1),
        label: label.into(),
    });
    t.apply(Update::Paired {
        guid: guid(id as u8 + 1),
        node: "127.0.0.1:8443".into(),
    });
    t.apply(Update::Secured {
        sas: "123 456".into(),
    });
    t.apply(Update::Event(Event::Chat("it says PC LOAD LETTER".into())));
    t.say(Who::Me, "Hello, I will look at your printer.");
    t
}

fn app() -> App {
    App::new(
        "Ada Lovelace <ada@example.com> at gw.example.com:8443".into(),
        true,
    )
}

/// The screen as text, one line per row, trailing blanks cut.
fn screen(app: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap_or_else(|e| match e {});
    term.draw(|f| view::draw(f, app))
        .unwrap_or_else(|e| match e {});
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        let mut row = String::new();
        for x in 0..w {
            row.push_str(buf[(x, y)].symbol());
        }
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out
}

/// Compares with `snapshots/NAME.txt`.
fn snapshot(name: &str, got: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/ui/snapshots");
    let file = dir.join(format!("{name}.txt"));
    let want = std::fs::read_to_string(&file).unwrap_or_default();
    if want == got {
        return;
    }
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&file, got).unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    let new = dir.join(format!("{name}.txt.new"));
    let _ = std::fs::write(&new, got);
    panic!(
        "screen {name} changed (new one in {}; UPDATE_SNAPSHOTS=1 accepts it):\n{got}",
        new.display()
    );
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn typed(app: &mut App, text: &str) -> Vec<Action> {
    let mut out = Vec::new();
    for c in text.chars() {
        out.extend(app.key(key(KeyCode::Char(c))));
    }
    out.extend(app.key(key(KeyCode::Enter)));
    out
}

#[test]
fn the_queue_at_80_by_24() {
    let mut a = app();
    let from_channel = |n, name: &str, ago, problem: &str| SessionInfo {
        technician: String::new(),
        channel: Some("front desk".into()),
        problem: problem.into(),
        ..waiting(n, name, ago, "192.0.2.44:40001")
    };
    a.set_queue(Ok(vec![
        waiting(1, "printer", 125_000, "203.0.113.7:50312"),
        waiting(2, "laptop", 20_000, "198.51.100.20:41000"),
        from_channel(3, "Grace", 90_000, "the scanner says E42"),
        from_channel(4, "", 300_000, ""),
    ]));
    snapshot("queue_80x24", &screen(&a, 80, 24));
    // Enter takes the one chosen: the first to wait, then ↓ the next.
    assert_eq!(
        a.key(key(KeyCode::Enter)),
        vec![Action::Connect(guid(4).to_string())]
    );
    a.key(key(KeyCode::Down));
    assert_eq!(
        a.key(key(KeyCode::Enter)),
        vec![Action::Connect(guid(1).to_string())]
    );
    // /next takes the group queue's longest waiting (not the own ones).
    assert_eq!(
        typed(&mut a, "/next"),
        vec![Action::Connect(guid(4).to_string())]
    );
    // Chat in the queue goes nowhere, and says so.
    typed(&mut a, "hello");
    assert!(screen(&a, 80, 24).contains("pick a session first"));
}

#[test]
fn a_session_at_80_by_24() {
    let mut a = app();
    let h = hands();
    let mut t = live_tab(0, "printer", h.controls.clone());
    t.transfers.push(Transfer {
        id: 3,
        outgoing: true,
        name: "driver.zip".into(),
        bytes: 45 << 20,
        size: 100 << 20,
        rate: 12.5e6,
        eta_secs: Some(4.0),
        state: "progress".into(),
    });
    t.granted = vec!["file-to-user".into(), "system-info".into()];
    t.sysinfo = Some("os     Debian 12\nhost   front-desk\nmemory 8 GB".into());
    t.notes = "2026-12-03T08:00:00Z  printer is an HP 4250\n".into();
    a.open_tab(t);
    a.tabs[0].editor.set("the line being typed");
    snapshot("session_80x24", &screen(&a, 80, 24));
}

#[test]
fn the_shell_pane_and_its_whole_screen() {
    let mut a = app();
    let mut h = hands();
    a.open_tab(live_tab(0, "printer", h.controls.clone()));
    let actions = typed(&mut a, "/shell");
    assert!(actions.is_empty());
    assert_eq!(a.mode, Mode::Shell);
    let asked = h.work.try_recv();
    assert!(
        matches!(
            asked,
            Ok(lifeline_remote::console::Input::Request(
                lifeline_remote::console::Request::Shell { .. }
            ))
        ),
        "{asked:?}"
    );
    if let Some(s) = a.tabs[0].shell.as_mut() {
        s.parser
            .process(b"user@front-desk:~$ echo hi\r\nhi\r\nuser@front-desk:~$ ");
    }
    snapshot("shell_80x24", &screen(&a, 80, 24));
    // Keys go to the shell, Ctrl-C too.
    a.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    let keys = h.work.try_recv();
    assert!(
        matches!(&keys, Ok(lifeline_remote::console::Input::Request(
            lifeline_remote::console::Request::Keys(k))) if k.as_ref() == [3]),
        "{keys:?}"
    );
    a.key(key(KeyCode::F(3)));
    let full = screen(&a, 80, 24);
    assert!(
        full.contains("echo hi") && !full.contains("Transfers"),
        "{full}"
    );
    // F2: the keyboard back to the input line; the shell stays.
    a.key(key(KeyCode::F(2)));
    assert_eq!(a.mode, Mode::Normal);
    assert!(h.session.try_recv().is_err());
}

#[test]
fn help_fits_80_by_24_and_any_key_closes_it() {
    let mut a = app();
    a.key(key(KeyCode::F(1)));
    let s = screen(&a, 80, 24);
    snapshot("help_80x24", &s);
    for line in App::help().lines() {
        assert!(s.contains(line.trim()), "{line:?} is cut:\n{s}");
    }
    a.key(key(KeyCode::Char('x')));
    assert_eq!(a.mode, Mode::Normal);
}

#[test]
fn ten_and_more_tabs_switch_by_key_and_stay_in_view() {
    let mut a = app();
    let h = hands();
    for i in 0..12 {
        a.open_tab(live_tab(i, &format!("user-{i}"), h.controls.clone()));
    }
    assert_eq!(a.focus, Focus::Tab(11));
    let s = screen(&a, 80, 24);
    let bar = s.lines().next().unwrap_or_default().to_owned();
    assert!(bar.contains("12 user-11"), "{bar}");
    a.key(KeyEvent::new(KeyCode::Char('3'), KeyModifiers::ALT));
    assert_eq!(a.focus, Focus::Tab(2));
    a.key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL));
    assert_eq!(a.focus, Focus::Tab(3));
    a.key(KeyEvent::new(KeyCode::Char('0'), KeyModifiers::ALT));
    assert_eq!(a.focus, Focus::Queue);
    a.key(KeyEvent::new(KeyCode::Char('p'), KeyModifiers::CONTROL));
    assert_eq!(a.focus, Focus::Tab(11));
    // A chat line on a tab behind marks it and the title.
    let attention = a.tabs[4].apply(Update::Event(Event::Chat("hello?".into())));
    assert!(attention);
    a.mark(4);
    let s = screen(&a, 80, 24);
    assert!(s.lines().next().unwrap_or_default().contains("5*"), "{s}");
    assert!(a.title().starts_with("(1) "), "{}", a.title());
    a.key(KeyEvent::new(KeyCode::Char('5'), KeyModifiers::ALT));
    assert_eq!(a.attention_count(), 0);
}

#[test]
fn no_color_means_no_colour_at_all() {
    let build = |color: bool| {
        let mut a = App::new("Ada".into(), color);
        let h = hands();
        a.set_queue(Ok(vec![waiting(1, "printer", 5_000, "203.0.113.7:1")]));
        a.open_tab(live_tab(0, "printer", h.controls.clone()));
        a.open_tab(live_tab(1, "laptop", h.controls.clone()));
        a.mark(0);
        let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap_or_else(|e| match e {});
        term.draw(|f| view::draw(f, &a))
            .unwrap_or_else(|e| match e {});
        let buf = term.backend().buffer().clone();
        buf.content()
            .iter()
            .any(|c| c.fg != Color::Reset || c.bg != Color::Reset)
    };
    assert!(build(true), "colours expected without NO_COLOR");
    assert!(!build(false), "a colour was drawn with NO_COLOR");
}

#[test]
fn commands_are_exact_and_an_ended_session_says_so() {
    let mut a = app();
    let mut h = hands();
    a.open_tab(live_tab(0, "printer", h.controls.clone()));
    typed(&mut a, "/endpoint config is wrong");
    assert!(h.session.try_recv().is_err(), "a typo went out");
    assert!(screen(&a, 80, 24).contains("unknown command /endpoint"));
    typed(&mut a, "//endpoint config is wrong");
    assert_eq!(
        h.session.try_recv().ok(),
        Some(lifeline_session::live::Command::Say(
            "/endpoint config is wrong".into()
        ))
    );
    // A note is kept with the session.
    let actions = typed(&mut a, "/note toner is low");
    assert!(
        matches!(&actions[..], [Action::Note(g, line)] if *g == guid(1) && line.ends_with("toner is low")),
        "{actions:?}"
    );
    a.tabs[0].apply(Update::Ended {
        by: "user".into(),
        reason: "the end user ended the session".into(),
        clean: true,
    });
    assert!(matches!(a.tabs[0].stage, Stage::Ended(_)));
    typed(&mut a, "still there?");
    assert!(
        h.session.try_recv().is_err(),
        "chat went to an ended session"
    );
    assert!(screen(&a, 80, 24).contains("this session has ended"));
    typed(&mut a, "/close");
    assert!(a.tabs.is_empty());
    assert_eq!(a.focus, Focus::Queue);
}

#[test]
fn a_session_handed_over_shows_in_the_queue_and_transfer_is_asked_for() {
    let mut a = app();
    a.set_queue(Ok(vec![SessionInfo {
        state: "paired".into(),
        waiting_since_ms: None,
        transfer: Some(lifeline_protocol::portal::TransferInfo {
            to: "grace@example.com".into(),
            to_name: "Grace Hopper".into(),
            console_pin: None,
        }),
        ..waiting(5, "printer", 0, "203.0.113.7:50312")
    }]));
    let shown = screen(&a, 80, 24);
    assert!(shown.contains("↳ handed over by Ada Lovelace"), "{shown}");
    assert_eq!(
        a.key(key(KeyCode::Enter)),
        vec![Action::Connect(guid(5).to_string())]
    );

    let mut h = hands();
    let mut a = app();
    a.open_tab(live_tab(0, "printer", h.controls.clone()));
    assert!(typed(&mut a, "/transfer Grace@Example.com").is_empty());
    assert_eq!(h.handing.try_recv(), Ok(Some("grace@example.com".into())));
    assert!(typed(&mut a, "/transfer cancel").is_empty());
    assert_eq!(h.handing.try_recv(), Ok(None));
}
