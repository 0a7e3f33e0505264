//! The end user's language, from the system.
//!
//! On Linux and other Unix systems it is the POSIX locale environment
//! (`LC_ALL`, then `LC_MESSAGES`, then `LANG`; `LANGUAGE`'s first entry
//! before those, as GNU programs do). Windows and macOS ask the system for
//! the user's UI language (`sys-locale`): a program double-clicked in the
//! Finder gets no `LANG`, and Windows has none.
//! `LIFELINE_LANG` (`en`, `de`, `nl`) overrides it everywhere, for
//! support staff and tests.

use crate::words::Lang;

/// The language to speak.
pub fn lang() -> Lang {
    if let Some(l) = var("LIFELINE_LANG") {
        return Lang::of_locale(&l);
    }
    system().map_or(Lang::En, |l| Lang::of_locale(&l))
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(all(unix, not(target_os = "macos")))]
fn system() -> Option<String> {
    // `LANGUAGE` is a list (`nl:en`); "C" and "POSIX" mean no language.
    let first = |v: String| v.split(':').next().map(str::to_owned);
    var("LANGUAGE")
        .and_then(first)
        .or_else(|| var("LC_ALL"))
        .or_else(|| var("LC_MESSAGES"))
        .or_else(|| var("LANG"))
        .filter(|l| l != "C" && l != "POSIX" && !l.starts_with("C."))
}

#[cfg(any(windows, target_os = "macos"))]
fn system() -> Option<String> {
    sys_locale::get_locale()
}

#[cfg(not(any(unix, windows)))]
fn system() -> Option<String> {
    None
}
