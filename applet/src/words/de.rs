//! Deutsch (German).

use super::{CannotStart, End, Label, Line, Path, Refusal, Trouble, percent, transport};
use lifeline_protocol::Permissions;
use lifeline_remote::to_user::{Activity, Overview, Question, ToUser};

fn size(n: u64) -> String {
    super::size(n, true)
}

fn cap(p: Permissions) -> &'static str {
    match p {
        Permissions::RUN_COMMAND => "eine Eingabeaufforderung benutzen",
        Permissions::FILE_TO_USER => "Ihnen Dateien senden",
        Permissions::FILE_FROM_USER => "Dateien von diesem Computer kopieren",
        Permissions::SYSTEM_INFO => "Systeminformationen lesen",
        Permissions::OPEN_URL => "Webseiten öffnen",
        _ => "etwas anderes",
    }
}

fn caps(p: Permissions) -> String {
    let v: Vec<&str> = p.each().map(cap).collect();
    if v.is_empty() {
        "nichts".to_owned()
    } else {
        v.join(", ")
    }
}

fn path(p: Path) -> &'static str {
    match p {
        Path::Relay => "über den Support-Dienst",
        Path::DirectTcp => "direkt (TCP)",
        Path::DirectUdp => "direkt (UDP)",
    }
}

fn refusal(r: Refusal) -> &'static str {
    match r {
        Refusal::Expired => {
            "Diese Support-Sitzung ist abgelaufen. Bitte fragen Sie Ihren Techniker nach einer neuen."
        }
        Refusal::Ended => {
            "Diese Support-Sitzung ist bereits beendet. Bitte fragen Sie Ihren Techniker nach einer neuen."
        }
        Refusal::Unknown => {
            "Der Support-Dienst kennt diese Sitzung nicht. Bitte fragen Sie Ihren Techniker nach einer neuen."
        }
        Refusal::AlreadyRunning => {
            "Dieses Support-Programm läuft für diese Sitzung bereits (vielleicht in einem anderen Fenster)."
        }
        Refusal::NotAuthorized => {
            "Der Support-Dienst konnte nicht bestätigen, dass dieses Programm zu Ihrer Sitzung gehört. Bitte fragen Sie Ihren Techniker nach einem neuen."
        }
        Refusal::Other => {
            "Der Support-Dienst kann diese Sitzung gerade nicht annehmen. Bitte versuchen Sie es in ein paar Minuten erneut oder rufen Sie Ihren Techniker an."
        }
    }
}

pub(super) fn lines(line: &Line, window: bool) -> Vec<String> {
    let one = |s: String| vec![s];
    match line {
        // A window has buttons for these.
        Line::TerminalHelp { .. } | Line::WithdrawHelp if window => Vec::new(),
        Line::CodeHint if window => one(label(&Label::CodeHint)),
        Line::Greeting {
            operator,
            technician,
            label,
            offered,
        } => {
            let about = if label.is_empty() {
                String::new()
            } else {
                format!(" bei „{label}“")
            };
            let mut v = vec![
                format!("Fernwartung von {operator}"),
                if technician.is_empty() {
                    format!("Der nächste freie Techniker hilft Ihnen{about}.")
                } else {
                    format!("Techniker {technician} möchte Ihnen helfen{about}.")
                },
            ];
            v.push(if offered.is_empty() {
                "Er oder sie kann nur mit Ihnen chatten.".to_owned()
            } else {
                format!(
                    "Er oder sie kann mit Ihnen chatten und darf außerdem fragen nach: {} — jeweils nur, wenn Sie zustimmen.",
                    caps(*offered)
                )
            });
            v
        }
        Line::Unverified => one(
            "Warnung: Der Herausgeber dieses Programms kann nicht überprüft werden. Fahren Sie nur fort, wenn Sie es von Ihrem Techniker erwartet haben."
                .into(),
        ),
        Line::TerminalHelp { work } => {
            let mut v = Vec::new();
            if *work {
                v.push("Geben Sie /grants ein, um zu sehen, was Sie erlaubt haben, /withdraw, um es zurückzunehmen, /stop, um zu beenden, was läuft.".to_owned());
            }
            v.push("Schreiben Sie eine Nachricht und drücken Sie die Eingabetaste, um zu chatten; mit /end oder Strg-C beenden Sie jederzeit.".to_owned());
            v
        }
        Line::Waiting { technician } if technician.is_empty() => {
            one("Warten auf den nächsten freien Techniker…".into())
        }
        Line::Waiting { technician } => one(format!("Warten, bis {technician} sich verbindet…")),
        Line::WaitingAgain => one("Wieder verbunden; warte weiter auf Ihren Techniker…".into()),
        Line::Retrying { trouble, secs } => one(format!(
            "{}; neuer Versuch in {secs} s…",
            match trouble {
                Trouble::Unreachable =>
                    "Der Support-Dienst ist noch nicht erreichbar (ist dieser Computer mit dem Internet verbunden?)",
                Trouble::Interrupted => "Die Verbindung zum Support-Dienst wurde unterbrochen",
                Trouble::SecureSetup => "Die sichere Verbindung zu Ihrem Techniker konnte nicht aufgebaut werden",
            }
        )),
        Line::Connected { technician, code } => {
            one(format!("Verbunden mit {technician}. Prüfcode: {code}"))
        }
        Line::CodeHint => one("Wenn Ihr Techniker Ihnen einen anderen Code nennt, geben Sie jetzt /end ein.".into()),
        Line::Chat { technician, text } => one(format!("{technician}: {text}")),
        Line::NotSentYet => {
            one("(Ihr Techniker ist noch nicht verbunden; Ihre Nachricht wurde nicht gesendet.)".into())
        }
        Line::NothingYet => {
            one("Ihr Techniker ist noch nicht verbunden; nichts ist erlaubt oder läuft.".into())
        }
        Line::Status(None) => one("Verbindung: warte auf Ihren Techniker.".into()),
        Line::Status(Some(p)) => one(format!("Verbindung: {}.", path(*p))),
        Line::Direct {
            technician,
            path: p,
        } => one(format!("Jetzt direkt mit {technician} verbunden ({}).", transport(*p))),
        Line::Reconnecting { technician } => one(typed(
            window,
            &format!("Die Verbindung wurde unterbrochen; {technician} verbindet sich neu…"),
            " (mit /end beenden Sie die Sitzung)",
        )),
        Line::HandedOver { from, to } => one(format!(
            "{from} hat Ihre Sitzung an {to} übergeben. Was Sie {from} erlaubt haben, ist \
             beendet; {to} fragt Sie, wenn etwas gebraucht wird. Warten auf {to}…"
        )),
        Line::TakenOver { technician } => {
            one(format!("{technician} ist jetzt verbunden und hilft Ihnen weiter."))
        }
        Line::Back {
            technician,
            restarted: true,
        } => one(format!("{technician} ist zurück.")),
        Line::Back { technician, .. } => one(format!("Wieder mit {technician} verbunden.")),
        Line::TestStarted { technician, mib } => {
            one(format!("{technician} testet die Verbindung ({mib} MiB)…"))
        }
        Line::TestDone {
            technician,
            to_user,
            ok,
            mib,
            secs,
        } => {
            let way = if *to_user { "von" } else { "zu" };
            one(if *ok {
                format!("Verbindungstest {way} {technician}: {mib} MiB in {secs:.1} s.")
            } else {
                format!("Verbindungstest {way} {technician} wurde nicht abgeschlossen.")
            })
        }
        Line::WithdrawHelp => one(
            "Geben Sie /withdraw ein, um jede erteilte Erlaubnis zurückzunehmen, oder /withdraw gefolgt von: command-prompt, files, system-info."
                .into(),
        ),
        Line::Work(w) => work(w, window),
        Line::Ended(End::BeforeConnecting) => {
            one("Sie haben beendet, bevor Ihr Techniker sich verbunden hat.".into())
        }
        Line::Ended(End::Refused(r)) => one(refusal(*r).into()),
        Line::Ended(End::NotTheTechnician) => one(
            "Die Verbindung wurde beendet: Die Gegenseite ist nicht Ihr Techniker (jemand könnte sie abfangen). Bitte rufen Sie Ihren Techniker an."
                .into(),
        ),
        Line::Ended(End::ConsoleRefused) => one(
            "Das Programm Ihres Technikers hat diese Sitzung abgelehnt. Bitte fragen Sie Ihren Techniker nach einem neuen Support-Programm."
                .into(),
        ),
        Line::Ended(end) => one(format!(
            "Sitzung beendet: {}.",
            match end {
                End::ByYou => "Sie haben die Sitzung beendet".to_owned(),
                End::ByTechnician { technician } => format!("{technician} hat die Sitzung beendet"),
                End::NotRestored { technician } =>
                    format!("die Verbindung zu {technician} konnte nicht wiederhergestellt werden"),
                End::Lost => "die Verbindung zu Ihrem Techniker ist abgebrochen".to_owned(),
                _ => "in diesem Programm ist ein Fehler aufgetreten".to_owned(),
            }
        )),
        Line::CannotStart(c) => one(match c {
            CannotStart::CannotReadItself => "Dieses Support-Programm kann seine eigene Datei nicht lesen. Bitte fragen Sie Ihren Techniker nach einem neuen.".to_owned(),
            CannotStart::Incomplete => "Dieses Support-Programm ist unvollständig: Es wurde nicht für eine Support-Sitzung vorbereitet, oder der Download wurde abgebrochen. Bitte lassen Sie es sich von Ihrem Techniker erneut senden.".to_owned(),
            CannotStart::Tampered => "Dieses Support-Programm wurde seit seiner Ausgabe verändert und kann nicht sicher ausgeführt werden. Bitte fragen Sie Ihren Techniker nach einem neuen.".to_owned(),
            CannotStart::Expired(at) => format!("Diese Support-Sitzung ist am {at} abgelaufen. Bitte fragen Sie Ihren Techniker nach einer neuen."),
            CannotStart::Misconfigured => "Dieses Support-Programm wurde nicht korrekt erstellt und kann nicht laufen. Bitte sagen Sie es Ihrem Techniker.".to_owned(),
            CannotStart::BadOption(o) => format!("Die Startoption {o} ist ungültig; starten Sie das Programm ohne sie."),
            CannotStart::NoResources => "Dieser Computer konnte das Support-Programm nicht starten (vielleicht fehlt Arbeitsspeicher). Bitte schließen Sie andere Programme und versuchen Sie es erneut.".to_owned(),
        }),
        Line::Removed(true) => one("Dieses Support-Programm hat sich selbst entfernt.".into()),
        Line::Removed(false) => {
            one("Dieses Support-Programm konnte sich nicht selbst entfernen; Sie können es löschen.".into())
        }
        Line::Verify {
            operator,
            technician,
            session,
            label,
            expires,
            offered,
            gateways,
            verified,
        } => {
            let mut v = vec![
                format!("Firma:       {operator}"),
                format!("Techniker:   {technician}"),
                format!("Sitzung:     {session}"),
            ];
            if !label.is_empty() {
                v.push(format!("Betreff:     {label}"));
            }
            v.push(format!("läuft ab:    {expires}"));
            v.push(format!("darf fragen: {}", caps(*offered)));
            v.push(format!("Dienst:      {}", gateways.join(", ")));
            v.push(if *verified {
                "Herausgeber: überprüft".to_owned()
            } else {
                "Herausgeber: NICHT ÜBERPRÜFT".to_owned()
            });
            v
        }
    }
}

fn question(q: &Question, window: bool) -> Vec<String> {
    let who = if q.who.company.is_empty() {
        q.who.technician.clone()
    } else {
        format!("{} ({})", q.who.technician, q.who.company)
    };
    let mut v = Vec::new();
    if q.whole_session {
        v.push(format!(
            "{who} bittet für den Rest dieser Sitzung um diese Erlaubnisse:"
        ));
        for c in q.caps.each() {
            v.push(format!("  - {}: {}", cap(c), meaning(c, q)));
        }
    } else {
        let what = match q.caps {
            Permissions::RUN_COMMAND => {
                "eine Eingabeaufforderung auf diesem Computer benutzen".to_owned()
            }
            Permissions::FILE_TO_USER => "Ihnen Dateien senden".to_owned(),
            Permissions::FILE_FROM_USER => format!(
                "die Dateien im Ordner {} sehen und kopieren",
                q.folder.as_deref().unwrap_or("")
            ),
            Permissions::SYSTEM_INFO => "Informationen über diesen Computer lesen".to_owned(),
            Permissions::OPEN_URL => format!(
                "diese Webseite in Ihrem Browser öffnen: {}",
                q.url.as_deref().unwrap_or("")
            ),
            _ => "etwas auf diesem Computer tun".to_owned(),
        };
        v.push(format!("{who} möchte {what}."));
        v.push(meaning(q.caps, q));
    }
    v.push(if window {
        format!("Keine Antwort innerhalb von {} Sekunden heißt nein.", q.timeout_secs)
    } else {
        format!(
            "Erlauben? Geben Sie ja oder nein ein und drücken Sie die Eingabetaste. Keine Antwort innerhalb von {} Sekunden heißt nein.",
            q.timeout_secs
        )
    });
    v
}

fn meaning(c: Permissions, q: &Question) -> String {
    match c {
        Permissions::RUN_COMMAND => "Der Techniker kann dann auf diesem Computer in Ihrem Namen Befehle eingeben und deren Ausgabe sehen.".to_owned(),
        Permissions::FILE_TO_USER => format!("Dateien werden in {} gespeichert; dort wird nichts ersetzt.", q.downloads),
        Permissions::FILE_FROM_USER if q.folder.is_some() => "Der Techniker kann dann die Dateien in diesem Ordner und seinen Unterordnern sehen und kopieren.".to_owned(),
        Permissions::FILE_FROM_USER => "Der Techniker kann dann jede Datei sehen und kopieren, die Sie öffnen können.".to_owned(),
        Permissions::SYSTEM_INFO => "Zum Beispiel Betriebssystem, Arbeitsspeicher, Laufwerke, Netzwerkadressen und laufende Programme.".to_owned(),
        Permissions::OPEN_URL => "Erlauben Sie es nur, wenn Sie dieser Adresse vertrauen.".to_owned(),
        _ => String::new(),
    }
}

fn activity(a: &Activity) -> String {
    match a {
        Activity::Shell => "eine Eingabeaufforderung".to_owned(),
        Activity::Command => "ein Befehl".to_owned(),
        Activity::Copying(n) => format!("{n} wird zum Techniker kopiert"),
        Activity::Receiving(n) => format!("{n} wird empfangen"),
        Activity::Waiting(n) => format!("{n} weitere Dateien warten"),
    }
}

fn overview(o: &Overview, window: bool) -> Vec<String> {
    let mut v = vec![
        format!(
            "Die Firma Ihres Technikers erlaubt, zu fragen nach: {}.",
            caps(o.allowed)
        ),
        format!("Sie haben erlaubt: {}.", caps(o.granted)),
    ];
    if !o.folders.is_empty() {
        v.push(format!(
            "Ordner, aus denen der Techniker kopieren darf: {}.",
            o.folders.join(", ")
        ));
    }
    v.push(if o.running.is_empty() {
        "Es läuft nichts.".to_owned()
    } else {
        let r: Vec<String> = o.running.iter().map(activity).collect();
        typed(
            window,
            &format!("Läuft gerade: {}.", r.join("; ")),
            " Mit /stop beenden Sie es.",
        )
    });
    v
}

fn work(w: &ToUser, window: bool) -> Vec<String> {
    let one = |s: String| vec![s];
    match w {
        ToUser::Ask(q) => question(q, window),
        ToUser::QuestionWithdrawn => one(
            "Die Frage des Technikers wurde zurückgezogen: sein Programm wurde neu gestartet."
                .into(),
        ),
        ToUser::Allowed { briefly: true } => one("Sie haben es erlaubt.".into()),
        ToUser::Allowed { briefly: false } => one(if window {
            "Sie haben es erlaubt. Sie können es jederzeit zurücknehmen oder die Sitzung beenden."
                .into()
        } else {
            "Sie haben es erlaubt. Mit /withdraw nehmen Sie es zurück, mit /end beenden Sie die Sitzung — jederzeit.".into()
        }),
        ToUser::Refused => one("Sie haben es abgelehnt.".into()),
        ToUser::TimedOut { secs } => one(format!(
            "Keine Antwort innerhalb von {secs} Sekunden: Die Anfrage wurde abgelehnt."
        )),
        ToUser::StoppedEverything => {
            one("Alles, was der Techniker auf diesem Computer laufen hatte, wurde beendet.".into())
        }
        ToUser::Listed { folder } => one(format!(
            "Der Techniker hat sich die Liste der Dateien in {folder} angesehen."
        )),
        ToUser::Copying { path, files } => one(typed(
            window,
            &format!(
                "{path} ({files} {}) wird zum Techniker kopiert.",
                if *files == 1 { "Datei" } else { "Dateien" }
            ),
            " Mit /stop beenden Sie es.",
        )),
        ToUser::ReadSystemInfo => {
            one("Der Techniker hat die Systeminformationen dieses Computers gelesen.".into())
        }
        ToUser::OpenedPage { url } => one(format!("{url} wurde in Ihrem Browser geöffnet.")),
        ToUser::PageFailed => one("Die Webseite konnte nicht geöffnet werden.".into()),
        ToUser::Receiving {
            name,
            size: n,
            into,
        } => one(format!(
            "{name} ({}) wird vom Techniker nach {into} empfangen.",
            size(*n)
        )),
        ToUser::ShellOpened => one(typed(
            window,
            "Der Techniker hat eine Eingabeaufforderung auf diesem Computer geöffnet.",
            " Mit /stop schließen Sie sie.",
        )),
        ToUser::CommandRunning { line } => one(format!(
            "Der Techniker führt einen Befehl auf diesem Computer aus: {line}"
        )),
        ToUser::ShellClosed => {
            one("Die Eingabeaufforderung des Technikers wurde geschlossen.".into())
        }
        ToUser::Progress(p) => {
            let eta = p
                .eta_secs
                .map_or_else(String::new, |s| format!(", noch {s:.0} s"));
            one(format!(
                "{} {}: {} % ({} von {}, {}/s{eta})",
                if p.outgoing { "Kopieren" } else { "Empfangen" },
                p.name,
                percent(p.bytes, p.size),
                size(p.bytes),
                size(p.size),
                size(p.rate as u64)
            ))
        }
        ToUser::Saved { path, .. } => one(format!("Gespeichert: {path}.")),
        ToUser::ReceiveFailed { name, detail, .. } => {
            one(format!("Empfang von {name} nicht abgeschlossen: {detail}"))
        }
        ToUser::Copied { name, .. } => one(format!("{name} wurde zum Techniker kopiert.")),
        ToUser::CopyFailed { name, detail, .. } => one(format!(
            "Kopieren von {name} zum Techniker nicht abgeschlossen: {detail}"
        )),
        ToUser::Withdrew { taken } if taken.is_empty() => {
            one("Nichts war erlaubt; nichts zurückzunehmen.".into())
        }
        ToUser::Withdrew { taken } => one(format!("Sie haben zurückgenommen: {}.", caps(*taken))),
        ToUser::Overview(o) => overview(o, window),
        ToUser::State(_) => Vec::new(),
    }
}

/// `s`, and in a terminal the instruction `hint` after it (a window has a
/// button instead).
fn typed(window: bool, s: &str, hint: &str) -> String {
    if window {
        s.to_owned()
    } else {
        format!("{s}{hint}")
    }
}

pub(super) fn label(l: &Label) -> String {
    match l {
        Label::Title => "Fernsupport".into(),
        Label::Looking => "Der Support-Server wird gesucht…".into(),
        Label::ConnectedVia { technician, path } => match path {
            Path::Relay => format!("Über den Support-Server mit {technician} verbunden."),
            Path::DirectTcp | Path::DirectUdp => format!("Direkt mit {technician} verbunden."),
        },
        Label::CodeTitle => "Prüfcode".into(),
        Label::CodeHint => {
            "Ihr Techniker sieht denselben Code. Nennt er Ihnen einen anderen, klicken Sie jetzt auf „Sitzung beenden“."
                .into()
        }
        Label::QuestionTitle => "Ihr Techniker bittet um Erlaubnis".into(),
        Label::Allow => "Erlauben".into(),
        Label::Deny => "Nicht erlauben".into(),
        Label::Messages => "Nachrichten".into(),
        Label::You => "Sie".into(),
        Label::YourMessage => "Ihre Nachricht".into(),
        Label::Send => "Senden".into(),
        Label::NothingToSendYet => {
            "Sie können schreiben, sobald Ihr Techniker verbunden ist.".into()
        }
        Label::Granted(p) => format!("Sie haben erlaubt: {}.", caps(*p)),
        Label::TakeBack => "Alle Erlaubnisse zurücknehmen".into(),
        Label::Running(r) if r.is_empty() => "Auf diesem Computer läuft nichts.".into(),
        Label::Running(r) => {
            let r: Vec<String> = r.iter().map(activity).collect();
            format!("Läuft gerade auf diesem Computer: {}.", r.join("; "))
        }
        Label::StopRunning => "Beenden".into(),
        Label::Files => "Dateien".into(),
        Label::EndSession => "Sitzung beenden".into(),
        Label::AskEnd => {
            "Die Support-Sitzung beenden? Die Verbindung zu Ihrem Techniker wird getrennt.".into()
        }
        Label::AskEndYes => "Ja, beenden".into(),
        Label::AskEndNo => "Nein, weiter".into(),
        Label::Ending => "Die Sitzung wird beendet…".into(),
        Label::Close => "Schließen".into(),
    }
}
