//! Every message, in every language: complete, and free of what a person
//! must never see.

use super::*;
use lifeline_remote::to_user::{Activity, Asker, Overview, Progress, Question};

/// One of every message (every variant, and the branches that word it
/// differently).
fn every_line() -> Vec<Line> {
    let tech = || "Ada".to_owned();
    let q = |caps: Permissions, whole_session: bool| Question {
        who: Asker {
            technician: tech(),
            company: "Example IT".into(),
        },
        caps,
        whole_session,
        folder: Some("/home/u/Documents".into()),
        url: Some("https://example.org/".into()),
        downloads: "/home/u/Downloads".into(),
        timeout_secs: 60,
    };
    let overview = Overview {
        allowed: Permissions::ALL.capabilities(),
        granted: Permissions::RUN_COMMAND,
        folders: vec!["/home/u".into()],
        running: vec![
            Activity::Shell,
            Activity::Command,
            Activity::Copying("a.txt".into()),
            Activity::Receiving("b.txt".into()),
            Activity::Waiting(3),
        ],
    };
    let mut work = vec![
        ToUser::QuestionWithdrawn,
        ToUser::Allowed { briefly: true },
        ToUser::Allowed { briefly: false },
        ToUser::Refused,
        ToUser::TimedOut { secs: 60 },
        ToUser::StoppedEverything,
        ToUser::Listed {
            folder: "/tmp".into(),
        },
        ToUser::Copying {
            path: "/tmp/x".into(),
            files: 1,
        },
        ToUser::Copying {
            path: "/tmp/x".into(),
            files: 2,
        },
        ToUser::ReadSystemInfo,
        ToUser::OpenedPage {
            url: "https://example.org/".into(),
        },
        ToUser::PageFailed,
        ToUser::Receiving {
            name: "a.bin".into(),
            size: 1_500_000,
            into: "/d".into(),
        },
        ToUser::ShellOpened,
        ToUser::CommandRunning { line: "ls".into() },
        ToUser::ShellClosed,
        ToUser::Progress(Progress {
            outgoing: true,
            id: 1,
            name: "a.bin".into(),
            bytes: 500,
            size: 1000,
            rate: 1e6,
            eta_secs: Some(3.0),
        }),
        ToUser::Saved {
            id: 1,
            path: "/d/a.bin".into(),
        },
        ToUser::ReceiveFailed {
            id: 1,
            name: "a".into(),
            detail: "x".into(),
        },
        ToUser::Copied {
            id: 1,
            name: "a".into(),
        },
        ToUser::CopyFailed {
            id: 1,
            name: "a".into(),
            detail: "x".into(),
        },
        ToUser::Withdrew {
            taken: Permissions::default(),
        },
        ToUser::Withdrew {
            taken: Permissions::RUN_COMMAND,
        },
        ToUser::Overview(overview.clone()),
        ToUser::Overview(Overview::default()),
    ];
    for cap in Permissions::ALL.capabilities().each() {
        work.push(ToUser::Ask(q(cap, false)));
    }
    work.push(ToUser::Ask(q(Permissions::ALL.capabilities(), true)));
    let mut lines: Vec<Line> = work.into_iter().map(Line::Work).collect();
    lines.extend([
        Line::Greeting {
            operator: "Example IT".into(),
            technician: tech(),
            label: "printer".into(),
            offered: Permissions::RUN_COMMAND,
        },
        Line::Greeting {
            operator: "Example IT".into(),
            technician: tech(),
            label: String::new(),
            offered: Permissions::default(),
        },
        Line::Unverified,
        Line::TerminalHelp { work: true },
        Line::Waiting { technician: tech() },
        Line::WaitingAgain,
        Line::Connected {
            technician: tech(),
            code: "123 456".into(),
        },
        Line::CodeHint,
        Line::Chat {
            technician: tech(),
            text: "hi".into(),
        },
        Line::NotSentYet,
        Line::NothingYet,
        Line::Status(None),
        Line::WithdrawHelp,
        Line::Reconnecting { technician: tech() },
        Line::HandedOver {
            from: tech(),
            to: tech(),
        },
        Line::TakenOver { technician: tech() },
        Line::Back {
            technician: tech(),
            restarted: true,
        },
        Line::Back {
            technician: tech(),
            restarted: false,
        },
        Line::TestStarted {
            technician: tech(),
            mib: 8,
        },
        Line::Removed(true),
        Line::Removed(false),
        Line::Verify {
            operator: "Example IT".into(),
            technician: tech(),
            session: "g".into(),
            label: "l".into(),
            expires: "2026-12-02 10:00".into(),
            offered: Permissions::RUN_COMMAND,
            gateways: vec!["gw.example.org:443".into()],
            verified: false,
        },
    ]);
    for to_user in [true, false] {
        for ok in [true, false] {
            lines.push(Line::TestDone {
                technician: tech(),
                to_user,
                ok,
                mib: 8,
                secs: 1.5,
            });
        }
    }
    for trouble in [
        Trouble::Unreachable,
        Trouble::Interrupted,
        Trouble::SecureSetup,
    ] {
        lines.push(Line::Retrying { trouble, secs: 4 });
    }
    for p in [Path::Relay, Path::DirectTcp, Path::DirectUdp] {
        lines.push(Line::Status(Some(p)));
        lines.push(Line::Direct {
            technician: tech(),
            path: p,
        });
    }
    for r in [
        Refusal::Expired,
        Refusal::Ended,
        Refusal::Unknown,
        Refusal::AlreadyRunning,
        Refusal::NotAuthorized,
        Refusal::Other,
    ] {
        lines.push(Line::Ended(End::Refused(r)));
    }
    for e in [
        End::ByYou,
        End::ByTechnician { technician: tech() },
        End::NotRestored { technician: tech() },
        End::Lost,
        End::BeforeConnecting,
        End::NotTheTechnician,
        End::ConsoleRefused,
        End::Internal,
    ] {
        lines.push(Line::Ended(e));
    }
    for c in [
        CannotStart::CannotReadItself,
        CannotStart::Incomplete,
        CannotStart::Tampered,
        CannotStart::Expired("2026-12-01 10:00".into()),
        CannotStart::Misconfigured,
        CannotStart::BadOption("--path".into()),
        CannotStart::NoResources,
    ] {
        lines.push(Line::CannotStart(c));
    }
    lines
}

#[test]
fn every_message_is_said_in_every_language_and_says_nothing_it_must_not() {
    let lines = every_line();
    assert!(lines.len() > 80, "{}", lines.len());
    for line in &lines {
        let en = Lang::En.text(line);
        assert!(!en.trim().is_empty(), "{line:?} has no English words");
        for lang in Lang::ALL {
            let text = lang.text(line);
            assert!(!text.trim().is_empty(), "{line:?} says nothing in {lang:?}");
            let lower = text.to_lowercase();
            for never in [
                "http://",
                "docs.rs",
                "github",
                "development build",
                "error:",
                "the link",
                "lifeline",
                "screen",
                "restart this",
                "os error",
                "tls",
            ] {
                // Addresses the technician chose are shown as given.
                let allowed =
                    matches!(line, Line::Work(ToUser::OpenedPage { .. } | ToUser::Ask(_)))
                        && never.starts_with("http");
                assert!(
                    allowed || !lower.contains(never),
                    "{lang:?} {line:?}: {text}"
                );
            }
            if lang != Lang::En {
                // Translated, not copied — except lines that are only the
                // names and words of others (a chat line).
                let own = !matches!(line, Line::Chat { .. });
                assert!(
                    !own || text != en,
                    "{lang:?} is English for {line:?}: {text}"
                );
            }
        }
    }
}

#[test]
fn the_language_follows_the_locale_name() {
    assert_eq!(Lang::of_locale("de_DE.UTF-8"), Lang::De);
    assert_eq!(Lang::of_locale("de-AT"), Lang::De);
    assert_eq!(Lang::of_locale("nl_BE@euro"), Lang::Nl);
    assert_eq!(Lang::of_locale("NL"), Lang::Nl);
    assert_eq!(Lang::of_locale("en_GB"), Lang::En);
    assert_eq!(Lang::of_locale("fr_FR"), Lang::En);
    assert_eq!(Lang::of_locale(""), Lang::En);
}

#[test]
fn yes_and_no_work_in_every_language_and_in_english() {
    for lang in Lang::ALL {
        let (yes, no) = lang.yes_no();
        assert!(yes.contains(&"yes") && no.contains(&"no"), "{lang:?}");
        assert!(yes.iter().all(|y| !no.contains(y)), "{lang:?}");
    }
    assert!(Lang::De.yes_no().0.contains(&"ja"));
    assert!(Lang::Nl.yes_no().1.contains(&"nee"));
}

#[test]
fn a_window_points_at_its_buttons_never_at_what_to_type() {
    for line in &every_line() {
        for lang in Lang::ALL {
            let text = lang.lines_on(Screen::Window, line).join("\n");
            for typed in ["/end", "/stop", "/withdraw", "/grants", "ctrl-c", "strg-c"] {
                assert!(
                    !text.to_lowercase().contains(typed),
                    "{lang:?} window {line:?}: {text}"
                );
            }
            // Only the terminal's own help is missing from a window.
            let terminal_only = matches!(line, Line::TerminalHelp { .. } | Line::WithdrawHelp);
            assert_eq!(
                text.trim().is_empty(),
                terminal_only,
                "{lang:?} window {line:?}: {text}"
            );
        }
    }
}

#[test]
fn every_label_of_the_window_is_said_in_every_language() {
    for label in Label::every() {
        let en = Lang::En.label(&label);
        for lang in Lang::ALL {
            let text = lang.label(&label);
            assert!(
                !text.trim().is_empty(),
                "{label:?} says nothing in {lang:?}"
            );
            assert!(
                !text.to_lowercase().contains("lifeline") && !text.contains('/'),
                "{lang:?} {label:?}: {text}"
            );
            if lang != Lang::En {
                assert_ne!(text, en, "{lang:?} is English for {label:?}");
            }
        }
    }
}
