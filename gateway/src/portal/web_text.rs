//! The end user's web page in English, German and Dutch, chosen by the
//! browser's `Accept-Language`.

/// The page's words in one language.
#[derive(Debug)]
pub struct Words {
    /// The `lang` attribute.
    pub lang: &'static str,
    pub title: &'static str,
    pub heading: &'static str,
    pub intro: &'static str,
    pub pin_label: &'static str,
    pub pin_hint: &'static str,
    pub platform_label: &'static str,
    pub download: &'static str,
    pub then: &'static str,
    pub steps: [&'static str; 3],
    pub wrong_pin: &'static str,
    pub not_a_pin: &'static str,
    pub too_many: &'static str,
    pub busy: &'static str,
    pub no_program: &'static str,
    pub link_intro: &'static str,
    pub dead_link: &'static str,
    pub channel_intro: &'static str,
    pub name_label: &'static str,
    pub problem_label: &'static str,
    pub optional: &'static str,
    pub dead_channel: &'static str,
    pub too_long: &'static str,
    pub platforms: [(&'static str, &'static str); 5],
}

const EN: Words = Words {
    lang: "en",
    title: "Remote support",
    heading: "Get help from your technician",
    intro: "Your technician tells you a 6-digit code. Type it here to download the support \
            program.",
    pin_label: "6-digit code",
    pin_hint: "The code works once, for a short time.",
    platform_label: "Your computer",
    download: "Download",
    then: "Then",
    steps: [
        "Open the downloaded file. If your computer asks whether to run it, allow it.",
        "A window shows who wants to connect. Nothing happens on your computer without your \
         agreement.",
        "You can end the session at any time. Afterwards the program removes itself.",
    ],
    wrong_pin: "This code does not work. Check the 6 digits with your technician: each code \
                works once, for a short time.",
    not_a_pin: "Please type the 6 digits of the code.",
    too_many: "Too many tries. Please wait a minute, then try again.",
    busy: "The service is busy. Please try again in a minute.",
    no_program: "The support program for this computer is not available here. Ask your \
                 technician.",
    link_intro: "Your technician sent you this link. Choose your computer and download the \
                 support program.",
    dead_link: "This link does not work any more: it works once, and only for a while. Ask \
                your technician for a new one.",
    channel_intro: "Download the support program. When you run it, you wait for the next \
                    free technician, who then connects to you.",
    name_label: "Your name",
    problem_label: "What do you need help with?",
    optional: "(optional)",
    too_long: "Please shorten your name or your description.",
    dead_channel: "This support address does not work any more. Please ask your support \
                   team for the right one.",
    platforms: [
        ("windows-x86_64", "Windows"),
        ("macos-aarch64", "Mac (Apple chip)"),
        ("macos-x86_64", "Mac (Intel)"),
        ("linux-x86_64", "Linux (64-bit PC)"),
        ("linux-aarch64", "Linux (ARM)"),
    ],
};

const DE: Words = Words {
    lang: "de",
    title: "Fernhilfe",
    heading: "Hilfe von Ihrem Techniker",
    intro: "Ihr Techniker nennt Ihnen einen 6-stelligen Code. Geben Sie ihn hier ein, um das \
            Hilfeprogramm herunterzuladen.",
    pin_label: "6-stelliger Code",
    pin_hint: "Der Code gilt einmal und nur kurze Zeit.",
    platform_label: "Ihr Computer",
    download: "Herunterladen",
    then: "Danach",
    steps: [
        "Öffnen Sie die heruntergeladene Datei. Fragt Ihr Computer, ob sie ausgeführt werden \
         soll, erlauben Sie es.",
        "Ein Fenster zeigt, wer sich verbinden möchte. Ohne Ihre Zustimmung geschieht nichts \
         auf Ihrem Computer.",
        "Sie können die Sitzung jederzeit beenden. Danach entfernt sich das Programm selbst.",
    ],
    wrong_pin: "Dieser Code funktioniert nicht. Prüfen Sie die 6 Ziffern mit Ihrem Techniker: \
                Jeder Code gilt einmal und nur kurze Zeit.",
    not_a_pin: "Bitte geben Sie die 6 Ziffern des Codes ein.",
    too_many: "Zu viele Versuche. Bitte warten Sie eine Minute und versuchen Sie es dann \
               erneut.",
    busy: "Der Dienst ist ausgelastet. Bitte versuchen Sie es in einer Minute erneut.",
    no_program: "Das Hilfeprogramm für diesen Computer ist hier nicht verfügbar. Fragen Sie \
                 Ihren Techniker.",
    link_intro: "Ihr Techniker hat Ihnen diesen Link geschickt. Wählen Sie Ihren Computer und \
                 laden Sie das Hilfeprogramm herunter.",
    dead_link: "Dieser Link funktioniert nicht mehr: Er gilt einmal und nur eine Zeit lang. \
                Bitten Sie Ihren Techniker um einen neuen.",
    channel_intro: "Laden Sie das Hilfeprogramm herunter. Wenn Sie es starten, warten Sie \
                    auf den nächsten freien Techniker, der sich dann mit Ihnen verbindet.",
    name_label: "Ihr Name",
    problem_label: "Wobei brauchen Sie Hilfe?",
    optional: "(freiwillig)",
    too_long: "Bitte kürzen Sie Ihren Namen oder Ihre Beschreibung.",
    dead_channel: "Diese Hilfe-Adresse funktioniert nicht mehr. Bitte fragen Sie Ihr \
                   Support-Team nach der richtigen.",
    platforms: [
        ("windows-x86_64", "Windows"),
        ("macos-aarch64", "Mac (Apple-Chip)"),
        ("macos-x86_64", "Mac (Intel)"),
        ("linux-x86_64", "Linux (64-Bit-PC)"),
        ("linux-aarch64", "Linux (ARM)"),
    ],
};

const NL: Words = Words {
    lang: "nl",
    title: "Hulp op afstand",
    heading: "Hulp van uw technicus",
    intro: "Uw technicus geeft u een code van 6 cijfers. Typ die hier om het hulpprogramma te \
            downloaden.",
    pin_label: "Code van 6 cijfers",
    pin_hint: "De code werkt één keer, en maar korte tijd.",
    platform_label: "Uw computer",
    download: "Downloaden",
    then: "Daarna",
    steps: [
        "Open het gedownloade bestand. Vraagt uw computer of het mag starten, sta het dan toe.",
        "Een venster toont wie verbinding wil maken. Zonder uw toestemming gebeurt er niets op \
         uw computer.",
        "U kunt de sessie op elk moment beëindigen. Daarna verwijdert het programma zichzelf.",
    ],
    wrong_pin: "Deze code werkt niet. Controleer de 6 cijfers met uw technicus: elke code werkt \
                één keer, en maar korte tijd.",
    not_a_pin: "Typ de 6 cijfers van de code.",
    too_many: "Te veel pogingen. Wacht een minuut en probeer het dan opnieuw.",
    busy: "De dienst is druk. Probeer het over een minuut opnieuw.",
    no_program: "Het hulpprogramma voor deze computer is hier niet beschikbaar. Vraag het uw \
                 technicus.",
    link_intro: "Uw technicus heeft u deze link gestuurd. Kies uw computer en download het \
                 hulpprogramma.",
    dead_link: "Deze link werkt niet meer: hij werkt één keer, en maar een tijdje. Vraag uw \
                technicus om een nieuwe.",
    channel_intro: "Download het hulpprogramma. Als u het start, wacht u op de eerstvolgende \
                    vrije technicus, die dan verbinding met u maakt.",
    name_label: "Uw naam",
    problem_label: "Waarmee heeft u hulp nodig?",
    optional: "(niet verplicht)",
    too_long: "Maak uw naam of uw beschrijving korter.",
    dead_channel: "Dit hulpadres werkt niet meer. Vraag uw supportteam naar het juiste adres.",
    platforms: [
        ("windows-x86_64", "Windows"),
        ("macos-aarch64", "Mac (Apple-chip)"),
        ("macos-x86_64", "Mac (Intel)"),
        ("linux-x86_64", "Linux (64-bit pc)"),
        ("linux-aarch64", "Linux (ARM)"),
    ],
};

/// The words for an `Accept-Language` header: the first of German,
/// Dutch and English the browser asks for, by its weights; English when
/// it asks for none of them.
pub fn for_accept_language(header: Option<&str>) -> &'static Words {
    let mut asked: Vec<(f32, &str)> = header
        .unwrap_or("")
        .split(',')
        .filter_map(|part| {
            let mut bits = part.split(';');
            let tag = bits.next()?.trim();
            let q = bits
                .find_map(|b| b.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            (q > 0.0).then_some((q, tag))
        })
        .collect();
    // Stable: equal weights keep the browser's order.
    asked.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, tag) in asked {
        let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
        match primary.as_str() {
            "de" => return &DE,
            "nl" => return &NL,
            "en" => return &EN,
            _ => {}
        }
    }
    &EN
}

/// The platform a browser's `User-Agent` most likely runs on.
pub fn platform_of(user_agent: Option<&str>) -> Option<&'static str> {
    let ua = user_agent?;
    if ua.contains("Windows") {
        Some("windows-x86_64")
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        // Browsers on Apple chips still say "Intel"; Apple chips are
        // what is sold now.
        Some("macos-aarch64")
    } else if ua.contains("Linux") && (ua.contains("aarch64") || ua.contains("arm")) {
        Some("linux-aarch64")
    } else if ua.contains("Linux") || ua.contains("X11") {
        Some("linux-x86_64")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_follows_the_browser() {
        assert_eq!(for_accept_language(None).lang, "en");
        assert_eq!(
            for_accept_language(Some("de-DE,de;q=0.9,en;q=0.8")).lang,
            "de"
        );
        assert_eq!(
            for_accept_language(Some("fr-FR, nl;q=0.5, en;q=0.4")).lang,
            "nl"
        );
        assert_eq!(for_accept_language(Some("en;q=0.2, de;q=0.9")).lang, "de");
        assert_eq!(for_accept_language(Some("fr, es")).lang, "en");
        assert_eq!(for_accept_language(Some("de;q=0, nl")).lang, "nl");
    }

    #[test]
    fn the_platform_follows_the_user_agent() {
        let win = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36";
        assert_eq!(platform_of(Some(win)), Some("windows-x86_64"));
        let linux = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120";
        assert_eq!(platform_of(Some(linux)), Some("linux-x86_64"));
        assert_eq!(platform_of(Some("curl/8.0")), None);
    }
}
