//! The end user's consent, as the applet keeps it: sans-IO (the caller
//! passes the time), so every rule is tested without a screen or a clock.
//!
//! The rules, in order:
//! 1. The operator's policy (the group's permissions in the signed
//!    trailer) bounds everything: a capability outside it is refused
//!    without asking anyone, whatever the console sends, and the refusal
//!    names the rule.
//! 2. A capability the end user granted stays granted for the session
//!    until they withdraw it ("asked for when first used"). Reading files
//!    is granted per folder: the folder the end user saw in the prompt,
//!    and what is below it.
//! 3. Otherwise the end user is asked: one prompt at a time, yes or no,
//!    no by default, and no answer within [`PROMPT_TIMEOUT`] is a no. The
//!    single prompt (where the group allows it) asks once for a set of
//!    capabilities for the whole session; if refused, each use asks
//!    again.
//! 4. Opening a web address is asked for every address (the end user
//!    sees each one before it opens).
//! 5. Withdrawing takes a capability back at once (the caller stops what
//!    runs under it); ending the session ends every grant.

use lifeline_protocol::Permissions;
use lifeline_protocol::work::Decision;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What this program can do at all: the policy may allow more (seeing
/// the screen, restarting), which is never offered nor asked for here.
pub const SUPPORTED: Permissions = Permissions::RUN_COMMAND
    .union(Permissions::FILE_TO_USER)
    .union(Permissions::FILE_FROM_USER)
    .union(Permissions::SYSTEM_INFO)
    .union(Permissions::OPEN_URL);
/// How long a prompt waits for the end user's answer.
pub const PROMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Most prompts waiting behind the one shown (more are refused at once:
/// a console cannot bury the end user in questions).
pub const MAX_QUEUED: usize = 16;

/// A question for the end user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The request that asks (its id in the console's numbering).
    pub request: u64,
    /// The capabilities asked for.
    pub caps: Permissions,
    /// The single prompt: for the whole session.
    pub whole_session: bool,
    /// Reading files: the folder asked for.
    pub folder: Option<PathBuf>,
    /// Opening a web address: the address.
    pub url: Option<String>,
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Refused without asking: the policy does not allow it (the words
    /// name the rule).
    NotAllowed(String),
    /// The end user is being asked (or will be, after the prompts before
    /// it); the answer comes from [`Consent::answer`] or
    /// [`Consent::expire`].
    Asking,
    /// Too many questions waiting.
    Busy,
}

/// A decided prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The prompt.
    pub prompt: Prompt,
    /// Granted, refused or timed out.
    pub decision: Decision,
}

/// The applet's consent state for one session.
#[derive(Debug)]
pub struct Consent {
    policy: Permissions,
    single_prompt: bool,
    granted: Permissions,
    folders: Vec<PathBuf>,
    /// Reading files is granted everywhere the end user can read (the
    /// single prompt).
    any_folder: bool,
    shown: Option<(Prompt, Instant)>,
    queue: VecDeque<Prompt>,
    covered: Vec<Prompt>,
}

impl Consent {
    /// Consent under the group's `policy` (capabilities and the
    /// single-prompt flag, as in the trailer).
    pub fn new(policy: Permissions) -> Self {
        Self {
            policy: policy.capabilities().intersection(SUPPORTED),
            single_prompt: policy.contains(Permissions::SINGLE_PROMPT),
            granted: Permissions::NONE,
            folders: Vec::new(),
            any_folder: false,
            shown: None,
            queue: VecDeque::new(),
            covered: Vec::new(),
        }
    }

    /// What the policy allows (capabilities only).
    pub fn policy(&self) -> Permissions {
        self.policy
    }

    /// What the end user has granted and not withdrawn.
    pub fn granted(&self) -> Permissions {
        self.granted
    }

    /// The folders reading files is granted for.
    pub fn folders(&self) -> &[PathBuf] {
        &self.folders
    }

    /// The prompt on the end user's screen, and since when.
    pub fn shown(&self) -> Option<&(Prompt, Instant)> {
        self.shown.as_ref()
    }

    /// Checks a request for `cap` (one capability) at `now`. `folder`:
    /// for reading files, the folder it reads; `url`: for opening an
    /// address, the address. A request that needs a prompt is queued; the
    /// caller keeps it until the prompt is answered.
    pub fn request(
        &mut self,
        now: Instant,
        request: u64,
        cap: Permissions,
        folder: Option<&Path>,
        url: Option<&str>,
    ) -> Verdict {
        if !self.policy.contains(cap) {
            return Verdict::NotAllowed(format!(
                "the operator's policy for this technician's group does not allow {}",
                cap.name()
            ));
        }
        let granted = self.granted.contains(cap)
            && cap != Permissions::OPEN_URL
            && (cap != Permissions::FILE_FROM_USER || self.may_read(folder));
        if granted {
            return Verdict::Allowed;
        }
        self.enqueue(
            now,
            Prompt {
                request,
                caps: cap,
                whole_session: false,
                folder: folder.map(Path::to_path_buf),
                url: url.map(str::to_owned),
            },
        )
    }

    /// The single prompt: asks once for `caps` for the whole session.
    pub fn ask_whole_session(&mut self, now: Instant, request: u64, caps: Permissions) -> Verdict {
        let caps = caps.capabilities();
        if !self.single_prompt {
            return Verdict::NotAllowed(
                "the operator's policy for this technician's group does not allow asking for permissions for the whole session; each action asks when it is first used"
                    .into(),
            );
        }
        let outside = caps.without(self.policy);
        if !outside.is_empty() {
            return Verdict::NotAllowed(format!(
                "the operator's policy for this technician's group does not allow {}",
                outside
                    .each()
                    .map(Permissions::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        // Opening web addresses is asked for each address regardless.
        let caps = caps.without(Permissions::OPEN_URL);
        if caps.is_empty()
            || self.granted.contains(caps)
                && (!caps.contains(Permissions::FILE_FROM_USER) || self.any_folder)
        {
            return Verdict::Allowed;
        }
        self.enqueue(
            now,
            Prompt {
                request,
                caps,
                whole_session: true,
                folder: None,
                url: None,
            },
        )
    }

    fn enqueue(&mut self, now: Instant, prompt: Prompt) -> Verdict {
        if self.shown.is_none() {
            self.shown = Some((prompt, now));
            return Verdict::Asking;
        }
        if self.queue.len() >= MAX_QUEUED {
            return Verdict::Busy;
        }
        self.queue.push_back(prompt);
        Verdict::Asking
    }

    /// The end user answered the prompt on the screen. Returns it with
    /// its decision, and shows the next (see [`Consent::shown`]).
    pub fn answer(&mut self, now: Instant, yes: bool) -> Option<Answered> {
        let (prompt, _) = self.shown.take()?;
        let decision = if yes {
            self.grant(&prompt);
            Decision::Granted
        } else {
            Decision::Refused
        };
        self.show_next(now);
        Some(Answered { prompt, decision })
    }

    /// The prompt on the screen went unanswered past its time: a no.
    pub fn expire(&mut self, now: Instant) -> Option<Answered> {
        let (_, since) = self.shown.as_ref()?;
        if now.saturating_duration_since(*since) < PROMPT_TIMEOUT {
            return None;
        }
        let (prompt, _) = self.shown.take()?;
        self.show_next(now);
        Some(Answered {
            prompt,
            decision: Decision::TimedOut,
        })
    }

    /// When the prompt on the screen times out.
    pub fn deadline(&self) -> Option<Instant> {
        self.shown
            .as_ref()
            .map(|(_, since)| *since + PROMPT_TIMEOUT)
    }

    fn show_next(&mut self, now: Instant) {
        // A queued prompt may have been answered meanwhile by a grant (the
        // single prompt covering it).
        while let Some(p) = self.queue.pop_front() {
            let covered = !p.whole_session
                && p.url.is_none()
                && self.granted.contains(p.caps)
                && (!p.caps.contains(Permissions::FILE_FROM_USER)
                    || self.may_read(p.folder.as_deref()));
            if covered {
                // Shown and answered at once: the caller learns of it when
                // it asks again (see `covered`).
                self.covered.push(p);
                continue;
            }
            self.shown = Some((p, now));
            return;
        }
    }

    fn grant(&mut self, prompt: &Prompt) {
        if prompt.url.is_some() {
            // One address, once: nothing stays granted.
            return;
        }
        self.granted = self.granted.union(prompt.caps);
        if prompt.caps.contains(Permissions::FILE_FROM_USER) {
            match &prompt.folder {
                Some(f) => self.folders.push(f.clone()),
                None => self.any_folder = true,
            }
        }
    }

    /// Whether reading files in `folder` is granted (given that
    /// `FILE_FROM_USER` is).
    fn may_read(&self, folder: Option<&Path>) -> bool {
        self.any_folder || folder.is_some_and(|f| self.folders.iter().any(|g| f.starts_with(g)))
    }

    /// Queued prompts a grant made unnecessary: their requests may go
    /// ahead.
    pub fn take_covered(&mut self) -> Vec<Prompt> {
        std::mem::take(&mut self.covered)
    }

    /// The end user takes `caps` back. Returns what was actually granted
    /// among them (the caller stops what runs under it). Prompts waiting
    /// for those capabilities stay: the technician may ask again.
    pub fn withdraw(&mut self, caps: Permissions) -> Permissions {
        let taken = self.granted.intersection(caps);
        self.granted = self.granted.without(caps);
        if caps.contains(Permissions::FILE_FROM_USER) {
            self.folders.clear();
            self.any_folder = false;
        }
        taken
    }

    /// Every prompt shown or waiting (to refuse them when the session
    /// ends or the console restarts).
    pub fn drain_prompts(&mut self) -> Vec<Prompt> {
        let mut all: Vec<Prompt> = self.shown.take().map(|(p, _)| p).into_iter().collect();
        all.extend(self.queue.drain(..));
        all
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SHELL: Permissions = Permissions::RUN_COMMAND;

    fn policy(list: &str) -> Permissions {
        Permissions::parse_list(list).unwrap()
    }

    #[test]
    fn outside_the_policy_is_refused_without_asking_and_names_the_rule() {
        let now = Instant::now();
        let mut c = Consent::new(policy("system-info"));
        match c.request(now, 1, SHELL, None, None) {
            Verdict::NotAllowed(why) => assert!(why.contains("run-command"), "{why}"),
            v => panic!("{v:?}"),
        }
        assert!(c.shown().is_none(), "nobody was asked");
    }

    #[test]
    fn a_yes_holds_for_the_session_until_withdrawn() {
        let now = Instant::now();
        let mut c = Consent::new(policy("run-command"));
        assert_eq!(c.request(now, 1, SHELL, None, None), Verdict::Asking);
        let a = c.answer(now, true).unwrap();
        assert_eq!((a.prompt.request, a.decision), (1, Decision::Granted));
        assert_eq!(c.request(now, 2, SHELL, None, None), Verdict::Allowed);
        assert_eq!(c.withdraw(Permissions::ALL), SHELL);
        assert_eq!(c.request(now, 3, SHELL, None, None), Verdict::Asking);
    }

    #[test]
    fn no_answer_within_the_time_is_a_no_and_the_next_prompt_shows() {
        let t0 = Instant::now();
        let mut c = Consent::new(policy("run-command, system-info"));
        assert_eq!(c.request(t0, 1, SHELL, None, None), Verdict::Asking);
        assert_eq!(
            c.request(t0, 2, Permissions::SYSTEM_INFO, None, None),
            Verdict::Asking
        );
        assert_eq!(c.expire(t0 + PROMPT_TIMEOUT / 2), None);
        assert_eq!(c.deadline(), Some(t0 + PROMPT_TIMEOUT));
        let a = c.expire(t0 + PROMPT_TIMEOUT).unwrap();
        assert_eq!((a.prompt.request, a.decision), (1, Decision::TimedOut));
        let shown = &c.shown().unwrap().0;
        assert_eq!(shown.request, 2);
        // The second prompt gets its own full minute.
        assert_eq!(c.deadline(), Some(t0 + PROMPT_TIMEOUT * 2));
        assert_eq!(c.granted(), Permissions::NONE);
    }

    #[test]
    fn the_single_prompt_needs_the_policy_and_a_refusal_asks_again_per_use() {
        let now = Instant::now();
        let mut no = Consent::new(policy("run-command, system-info"));
        assert!(matches!(
            no.ask_whole_session(now, 1, policy("run-command")),
            Verdict::NotAllowed(_)
        ));
        let mut yes = Consent::new(policy("run-command, system-info, single-prompt"));
        assert!(matches!(
            yes.ask_whole_session(now, 1, policy("run-command, file-to-user")),
            Verdict::NotAllowed(why) if why.contains("file-to-user")
        ));
        assert_eq!(
            yes.ask_whole_session(now, 2, policy("run-command, system-info")),
            Verdict::Asking
        );
        assert_eq!(yes.answer(now, false).unwrap().decision, Decision::Refused);
        assert_eq!(yes.request(now, 3, SHELL, None, None), Verdict::Asking);
        yes.answer(now, false);
        assert_eq!(
            yes.ask_whole_session(now, 4, policy("run-command, system-info")),
            Verdict::Asking
        );
        yes.answer(now, true);
        assert_eq!(yes.request(now, 5, SHELL, None, None), Verdict::Allowed);
        assert_eq!(
            yes.request(now, 6, Permissions::SYSTEM_INFO, None, None),
            Verdict::Allowed
        );
    }

    #[test]
    fn reading_files_is_granted_per_folder_and_urls_every_time() {
        let now = Instant::now();
        let mut c = Consent::new(policy("file-from-user, open-url"));
        let docs = Path::new("/home/u/Documents");
        let read = Permissions::FILE_FROM_USER;
        assert_eq!(c.request(now, 1, read, Some(docs), None), Verdict::Asking);
        c.answer(now, true);
        assert_eq!(
            c.request(now, 2, read, Some(&docs.join("taxes")), None),
            Verdict::Allowed
        );
        assert_eq!(
            c.request(now, 3, read, Some(Path::new("/home/u/.ssh")), None),
            Verdict::Asking
        );
        c.answer(now, false);
        let url = Some("https://example.com/");
        assert_eq!(
            c.request(now, 4, Permissions::OPEN_URL, None, url),
            Verdict::Asking
        );
        c.answer(now, true);
        assert_eq!(
            c.request(now, 5, Permissions::OPEN_URL, None, url),
            Verdict::Asking
        );
    }

    #[test]
    fn a_grant_lets_queued_prompts_it_covers_go_ahead() {
        let now = Instant::now();
        let mut c = Consent::new(policy("run-command"));
        assert_eq!(c.request(now, 1, SHELL, None, None), Verdict::Asking);
        assert_eq!(c.request(now, 2, SHELL, None, None), Verdict::Asking);
        c.answer(now, true);
        let covered = c.take_covered();
        assert_eq!(covered.iter().map(|p| p.request).collect::<Vec<_>>(), [2]);
        assert!(c.shown().is_none());
    }

    #[test]
    fn a_flood_of_questions_is_bounded() {
        let now = Instant::now();
        let mut c = Consent::new(policy("open-url"));
        let mut busy = 0;
        for i in 0..(MAX_QUEUED as u64 + 5) {
            if c.request(
                now,
                i,
                Permissions::OPEN_URL,
                None,
                Some("https://a.example/"),
            ) == Verdict::Busy
            {
                busy += 1;
            }
        }
        assert_eq!(busy, 4, "one shown, {MAX_QUEUED} waiting, the rest refused");
        assert_eq!(c.drain_prompts().len(), MAX_QUEUED + 1);
    }
}
