//! Nederlands (Dutch).

use super::{CannotStart, End, Label, Line, Path, Refusal, Trouble, percent, transport};
use lifeline_protocol::Permissions;
use lifeline_remote::to_user::{Activity, Overview, Question, ToUser};

fn size(n: u64) -> String {
    super::size(n, true)
}

fn cap(p: Permissions) -> &'static str {
    match p {
        Permissions::RUN_COMMAND => "een opdrachtprompt gebruiken",
        Permissions::FILE_TO_USER => "u bestanden sturen",
        Permissions::FILE_FROM_USER => "bestanden van deze computer kopiëren",
        Permissions::SYSTEM_INFO => "systeeminformatie lezen",
        Permissions::OPEN_URL => "webpagina's openen",
        _ => "iets anders",
    }
}

fn caps(p: Permissions) -> String {
    let v: Vec<&str> = p.each().map(cap).collect();
    if v.is_empty() {
        "niets".to_owned()
    } else {
        v.join(", ")
    }
}

fn path(p: Path) -> &'static str {
    match p {
        Path::Relay => "via de supportdienst",
        Path::DirectTcp => "rechtstreeks (TCP)",
        Path::DirectUdp => "rechtstreeks (UDP)",
    }
}

fn refusal(r: Refusal) -> &'static str {
    match r {
        Refusal::Expired => "Deze supportsessie is verlopen. Vraag uw technicus om een nieuwe.",
        Refusal::Ended => "Deze supportsessie is al beëindigd. Vraag uw technicus om een nieuwe.",
        Refusal::Unknown => {
            "De supportdienst kent deze sessie niet. Vraag uw technicus om een nieuwe."
        }
        Refusal::AlreadyRunning => {
            "Dit supportprogramma draait al voor deze sessie (misschien in een ander venster)."
        }
        Refusal::NotAuthorized => {
            "De supportdienst kon niet bevestigen dat dit programma bij uw sessie hoort. Vraag uw technicus om een nieuw programma."
        }
        Refusal::Other => {
            "De supportdienst kan deze sessie nu niet aannemen. Probeer het over een paar minuten opnieuw, of bel uw technicus."
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
                format!(" met „{label}”")
            };
            let mut v = vec![
                format!("Hulp op afstand van {operator}"),
                if technician.is_empty() {
                    format!("De eerstvolgende vrije technicus helpt u{about}.")
                } else {
                    format!("Technicus {technician} wil u helpen{about}.")
                },
            ];
            v.push(if offered.is_empty() {
                "De technicus kan alleen met u chatten.".to_owned()
            } else {
                format!(
                    "De technicus kan met u chatten en mag ook vragen om: {} — telkens alleen als u ja zegt.",
                    caps(*offered)
                )
            });
            v
        }
        Line::Unverified => one(
            "Waarschuwing: de uitgever van dit programma kan niet worden gecontroleerd. Ga alleen verder als u het van uw technicus verwachtte."
                .into(),
        ),
        Line::TerminalHelp { work } => {
            let mut v = Vec::new();
            if *work {
                v.push("Typ /grants om te zien wat u hebt toegestaan, /withdraw om het in te trekken, /stop om te stoppen wat er draait.".to_owned());
            }
            v.push("Typ een bericht en druk op Enter om te chatten; met /end of Ctrl-C stopt u op elk moment.".to_owned());
            v
        }
        Line::Waiting { technician } if technician.is_empty() => {
            one("Wachten op de eerstvolgende vrije technicus…".into())
        }
        Line::Waiting { technician } => one(format!("Wachten tot {technician} verbinding maakt…")),
        Line::WaitingAgain => one("Opnieuw verbonden; nog steeds wachten op uw technicus…".into()),
        Line::Retrying { trouble, secs } => one(format!(
            "{}; nieuwe poging over {secs} s…",
            match trouble {
                Trouble::Unreachable =>
                    "De supportdienst is nog niet bereikbaar (is deze computer met internet verbonden?)",
                Trouble::Interrupted => "De verbinding met de supportdienst is onderbroken",
                Trouble::SecureSetup => "De beveiligde verbinding met uw technicus kon niet worden opgezet",
            }
        )),
        Line::Connected { technician, code } => {
            one(format!("Verbonden met {technician}. Controlecode: {code}"))
        }
        Line::CodeHint => one("Als uw technicus u een andere code voorleest, typ dan nu /end.".into()),
        Line::Chat { technician, text } => one(format!("{technician}: {text}")),
        Line::NotSentYet => {
            one("(Uw technicus is nog niet verbonden; uw bericht is niet verzonden.)".into())
        }
        Line::NothingYet => {
            one("Uw technicus is nog niet verbonden; er is niets toegestaan en er draait niets.".into())
        }
        Line::Status(None) => one("Verbinding: wachten op uw technicus.".into()),
        Line::Status(Some(p)) => one(format!("Verbinding: {}.", path(*p))),
        Line::Direct {
            technician,
            path: p,
        } => one(format!("Nu rechtstreeks verbonden met {technician} ({}).", transport(*p))),
        Line::Reconnecting { technician } => one(typed(
            window,
            &format!("De verbinding is onderbroken; {technician} maakt opnieuw verbinding…"),
            " (typ /end om de sessie te stoppen)",
        )),
        Line::HandedOver { from, to } => one(format!(
            "{from} heeft uw sessie overgedragen aan {to}. Wat u {from} had toegestaan, is \
             beëindigd; {to} vraagt het u als er iets nodig is. Wachten op {to}…"
        )),
        Line::TakenOver { technician } => {
            one(format!("{technician} is nu verbonden en helpt u verder."))
        }
        Line::Back {
            technician,
            restarted: true,
        } => one(format!("{technician} is terug.")),
        Line::Back { technician, .. } => one(format!("Opnieuw verbonden met {technician}.")),
        Line::TestStarted { technician, mib } => {
            one(format!("{technician} test de verbinding ({mib} MiB)…"))
        }
        Line::TestDone {
            technician,
            to_user,
            ok,
            mib,
            secs,
        } => {
            let way = if *to_user { "van" } else { "naar" };
            one(if *ok {
                format!("Verbindingstest {way} {technician}: {mib} MiB in {secs:.1} s.")
            } else {
                format!("Verbindingstest {way} {technician} is niet voltooid.")
            })
        }
        Line::WithdrawHelp => one(
            "Typ /withdraw om elke toestemming in te trekken, of /withdraw gevolgd door: command-prompt, files, system-info."
                .into(),
        ),
        Line::Work(w) => work(w, window),
        Line::Ended(End::BeforeConnecting) => {
            one("U bent gestopt voordat uw technicus verbinding maakte.".into())
        }
        Line::Ended(End::Refused(r)) => one(refusal(*r).into()),
        Line::Ended(End::NotTheTechnician) => one(
            "De verbinding is verbroken: de andere kant is niet uw technicus (iemand onderschept haar misschien). Bel uw technicus."
                .into(),
        ),
        Line::Ended(End::ConsoleRefused) => one(
            "Het programma van uw technicus heeft deze sessie geweigerd. Vraag uw technicus om een nieuw supportprogramma."
                .into(),
        ),
        Line::Ended(end) => one(format!(
            "Sessie beëindigd: {}.",
            match end {
                End::ByYou => "u hebt de sessie beëindigd".to_owned(),
                End::ByTechnician { technician } => format!("{technician} heeft de sessie beëindigd"),
                End::NotRestored { technician } =>
                    format!("de verbinding met {technician} kon niet worden hersteld"),
                End::Lost => "de verbinding met uw technicus is verbroken".to_owned(),
                _ => "er ging iets mis in dit programma".to_owned(),
            }
        )),
        Line::CannotStart(c) => one(match c {
            CannotStart::CannotReadItself => "Dit supportprogramma kan zijn eigen bestand niet lezen. Vraag uw technicus om een nieuw programma.".to_owned(),
            CannotStart::Incomplete => "Dit supportprogramma is onvolledig: het is niet voorbereid op een supportsessie, of de download is afgebroken. Vraag uw technicus het opnieuw te sturen.".to_owned(),
            CannotStart::Tampered => "Dit supportprogramma is gewijzigd sinds het werd uitgegeven en is daarom niet veilig. Vraag uw technicus om een nieuw programma.".to_owned(),
            CannotStart::Expired(at) => format!("Deze supportsessie is verlopen op {at}. Vraag uw technicus om een nieuwe."),
            CannotStart::Misconfigured => "Dit supportprogramma is niet goed gebouwd en kan niet draaien. Laat het uw technicus weten.".to_owned(),
            CannotStart::BadOption(o) => format!("De startoptie {o} is ongeldig; start het programma zonder deze optie."),
            CannotStart::NoResources => "Deze computer kon het supportprogramma niet starten (misschien is het geheugen vol). Sluit andere programma's en probeer het opnieuw.".to_owned(),
        }),
        Line::Removed(true) => one("Dit supportprogramma heeft zichzelf verwijderd.".into()),
        Line::Removed(false) => {
            one("Dit supportprogramma kon zichzelf niet verwijderen; u mag het verwijderen.".into())
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
                format!("bedrijf:     {operator}"),
                format!("technicus:   {technician}"),
                format!("sessie:      {session}"),
            ];
            if !label.is_empty() {
                v.push(format!("onderwerp:   {label}"));
            }
            v.push(format!("verloopt:    {expires}"));
            v.push(format!("mag vragen:  {}", caps(*offered)));
            v.push(format!("dienst:      {}", gateways.join(", ")));
            v.push(if *verified {
                "uitgever:    gecontroleerd".to_owned()
            } else {
                "uitgever:    NIET GECONTROLEERD".to_owned()
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
            "{who} vraagt deze toestemmingen voor de rest van deze sessie:"
        ));
        for c in q.caps.each() {
            v.push(format!("  - {}: {}", cap(c), meaning(c, q)));
        }
    } else {
        let what = match q.caps {
            Permissions::RUN_COMMAND => {
                "een opdrachtprompt op deze computer te gebruiken".to_owned()
            }
            Permissions::FILE_TO_USER => "u bestanden te sturen".to_owned(),
            Permissions::FILE_FROM_USER => format!(
                "de bestanden in de map {} te bekijken en te kopiëren",
                q.folder.as_deref().unwrap_or("")
            ),
            Permissions::SYSTEM_INFO => "informatie over deze computer te lezen".to_owned(),
            Permissions::OPEN_URL => format!(
                "deze webpagina in uw browser te openen: {}",
                q.url.as_deref().unwrap_or("")
            ),
            _ => "iets op deze computer te doen".to_owned(),
        };
        v.push(format!("{who} vraagt om {what}."));
        v.push(meaning(q.caps, q));
    }
    v.push(if window {
        format!("Geen antwoord binnen {} seconden betekent nee.", q.timeout_secs)
    } else {
        format!(
            "Toestaan? Typ ja of nee en druk op Enter. Geen antwoord binnen {} seconden betekent nee.",
            q.timeout_secs
        )
    });
    v
}

fn meaning(c: Permissions, q: &Question) -> String {
    match c {
        Permissions::RUN_COMMAND => "De technicus kan dan als u opdrachten op deze computer typen en zien wat ze tonen.".to_owned(),
        Permissions::FILE_TO_USER => format!("Bestanden worden opgeslagen in {}; daar wordt niets vervangen.", q.downloads),
        Permissions::FILE_FROM_USER if q.folder.is_some() => "De technicus kan dan de bestanden in deze map en de submappen zien en kopiëren.".to_owned(),
        Permissions::FILE_FROM_USER => "De technicus kan dan elk bestand zien en kopiëren dat u kunt openen.".to_owned(),
        Permissions::SYSTEM_INFO => "Bijvoorbeeld het besturingssysteem, geheugen, schijven, netwerkadressen en actieve programma's.".to_owned(),
        Permissions::OPEN_URL => "Sta het alleen toe als u dit adres vertrouwt.".to_owned(),
        _ => String::new(),
    }
}

fn activity(a: &Activity) -> String {
    match a {
        Activity::Shell => "een opdrachtprompt".to_owned(),
        Activity::Command => "een opdracht".to_owned(),
        Activity::Copying(n) => format!("{n} wordt naar de technicus gekopieerd"),
        Activity::Receiving(n) => format!("{n} wordt ontvangen"),
        Activity::Waiting(n) => format!("nog {n} bestanden in de wachtrij"),
    }
}

fn overview(o: &Overview, window: bool) -> Vec<String> {
    let mut v = vec![
        format!(
            "Het bedrijf van uw technicus staat toe te vragen om: {}.",
            caps(o.allowed)
        ),
        format!("U hebt toegestaan: {}.", caps(o.granted)),
    ];
    if !o.folders.is_empty() {
        v.push(format!(
            "Mappen waaruit de technicus mag kopiëren: {}.",
            o.folders.join(", ")
        ));
    }
    v.push(if o.running.is_empty() {
        "Er draait niets.".to_owned()
    } else {
        let r: Vec<String> = o.running.iter().map(activity).collect();
        typed(
            window,
            &format!("Draait nu: {}.", r.join("; ")),
            " Typ /stop om het te stoppen.",
        )
    });
    v
}

fn work(w: &ToUser, window: bool) -> Vec<String> {
    let one = |s: String| vec![s];
    match w {
        ToUser::Ask(q) => question(q, window),
        ToUser::QuestionWithdrawn => one(
            "De vraag van de technicus is ingetrokken: het programma van de technicus is herstart."
                .into(),
        ),
        ToUser::Allowed { briefly: true } => one("U hebt het toegestaan.".into()),
        ToUser::Allowed { briefly: false } => one(if window {
            "U hebt het toegestaan. U kunt het op elk moment intrekken of de sessie beëindigen."
                .into()
        } else {
            "U hebt het toegestaan. Met /withdraw trekt u het in, met /end beëindigt u de sessie — op elk moment.".into()
        }),
        ToUser::Refused => one("U hebt het geweigerd.".into()),
        ToUser::TimedOut { secs } => one(format!(
            "Geen antwoord binnen {secs} seconden: het verzoek is geweigerd."
        )),
        ToUser::StoppedEverything => {
            one("Alles wat de technicus op deze computer had draaien, is gestopt.".into())
        }
        ToUser::Listed { folder } => one(format!(
            "De technicus heeft de lijst met bestanden in {folder} bekeken."
        )),
        ToUser::Copying { path, files } => one(typed(
            window,
            &format!(
                "{path} ({files} {}) wordt naar de technicus gekopieerd.",
                if *files == 1 { "bestand" } else { "bestanden" }
            ),
            " Typ /stop om te stoppen.",
        )),
        ToUser::ReadSystemInfo => {
            one("De technicus heeft de systeeminformatie van deze computer gelezen.".into())
        }
        ToUser::OpenedPage { url } => one(format!("{url} is geopend in uw browser.")),
        ToUser::PageFailed => one("De webpagina kon niet worden geopend.".into()),
        ToUser::Receiving {
            name,
            size: n,
            into,
        } => one(format!(
            "{name} ({}) wordt van de technicus ontvangen in {into}.",
            size(*n)
        )),
        ToUser::ShellOpened => one(typed(
            window,
            "De technicus heeft een opdrachtprompt op deze computer geopend.",
            " Typ /stop om die te sluiten.",
        )),
        ToUser::CommandRunning { line } => one(format!(
            "De technicus voert een opdracht uit op deze computer: {line}"
        )),
        ToUser::ShellClosed => one("De opdrachtprompt van de technicus is gesloten.".into()),
        ToUser::Progress(p) => {
            let eta = p
                .eta_secs
                .map_or_else(String::new, |s| format!(", nog {s:.0} s"));
            one(format!(
                "{} {}: {}% ({} van {}, {}/s{eta})",
                if p.outgoing { "Kopiëren" } else { "Ontvangen" },
                p.name,
                percent(p.bytes, p.size),
                size(p.bytes),
                size(p.size),
                size(p.rate as u64)
            ))
        }
        ToUser::Saved { path, .. } => one(format!("Opgeslagen: {path}.")),
        ToUser::ReceiveFailed { name, detail, .. } => {
            one(format!("Ontvangen van {name} is niet voltooid: {detail}"))
        }
        ToUser::Copied { name, .. } => one(format!("{name} is naar de technicus gekopieerd.")),
        ToUser::CopyFailed { name, detail, .. } => one(format!(
            "Kopiëren van {name} naar de technicus is niet voltooid: {detail}"
        )),
        ToUser::Withdrew { taken } if taken.is_empty() => {
            one("Er was niets toegestaan; er is niets in te trekken.".into())
        }
        ToUser::Withdrew { taken } => one(format!("U hebt ingetrokken: {}.", caps(*taken))),
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
        Label::Title => "Hulp op afstand".into(),
        Label::Looking => "De supportserver wordt gezocht…".into(),
        Label::ConnectedVia { technician, path } => match path {
            Path::Relay => format!("Via de supportserver verbonden met {technician}."),
            Path::DirectTcp | Path::DirectUdp => {
                format!("Rechtstreeks verbonden met {technician}.")
            }
        },
        Label::CodeTitle => "Controlecode".into(),
        Label::CodeHint => {
            "Uw technicus ziet dezelfde code. Leest hij u een andere voor, klik dan nu op ‘Sessie beëindigen’."
                .into()
        }
        Label::QuestionTitle => "Uw technicus vraagt om toestemming".into(),
        Label::Allow => "Toestaan".into(),
        Label::Deny => "Niet toestaan".into(),
        Label::Messages => "Berichten".into(),
        Label::You => "U".into(),
        Label::YourMessage => "Uw bericht".into(),
        Label::Send => "Verzenden".into(),
        Label::NothingToSendYet => "U kunt schrijven zodra uw technicus verbonden is.".into(),
        Label::Granted(p) => format!("U hebt toegestaan: {}.", caps(*p)),
        Label::TakeBack => "Alle toestemmingen intrekken".into(),
        Label::Running(r) if r.is_empty() => "Er draait niets op deze computer.".into(),
        Label::Running(r) => {
            let r: Vec<String> = r.iter().map(activity).collect();
            format!("Draait nu op deze computer: {}.", r.join("; "))
        }
        Label::StopRunning => "Stoppen".into(),
        Label::Files => "Bestanden".into(),
        Label::EndSession => "Sessie beëindigen".into(),
        Label::AskEnd => {
            "De supportsessie beëindigen? De verbinding met uw technicus wordt verbroken.".into()
        }
        Label::AskEndYes => "Ja, beëindigen".into(),
        Label::AskEndNo => "Nee, doorgaan".into(),
        Label::Ending => "De sessie wordt beëindigd…".into(),
        Label::Close => "Sluiten".into(),
    }
}
