//! Personalizing the stock applet: append a signed trailer. The portal
//! never needs a compiler, and one stock binary per platform serves every
//! session.

use crate::config::Config;
use crate::state::Gateway;
use lifeline_protocol::directory::DirectoryNode;
use lifeline_protocol::trailer::{MAX_DIRECTORY_URLS, TrailerBody};
use lifeline_store::SessionRecord;
use std::path::PathBuf;

/// Largest stock applet accepted (guards against a misconfigured path).
pub const MAX_STOCK: u64 = 256 << 20;

/// Where the stock applet for `platform` is.
pub fn stock_path(config: &Config, platform: &str) -> Option<PathBuf> {
    if let Some((_, p)) = config.applets.iter().find(|(pl, _)| pl == platform) {
        return Some(p.clone());
    }
    if platform == crate::config::this_platform() {
        let exe = std::env::current_exe().ok()?;
        let name = if cfg!(windows) {
            "applet.exe"
        } else {
            "applet"
        };
        return Some(exe.parent()?.join(name));
    }
    None
}

/// Reads the stock applet for `platform`, refusing one that is already
/// personalized (a trailer on a trailer would confuse the applet).
pub async fn stock_applet(config: &Config, platform: &str) -> Result<Vec<u8>, String> {
    let path = stock_path(config, platform)
        .ok_or_else(|| format!("this gateway has no applet for platform {platform:?}"))?;
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|e| format!("the stock applet {} is not available: {e}", path.display()))?;
    if meta.len() > MAX_STOCK {
        return Err(format!("the stock applet {} is too large", path.display()));
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| format!("the stock applet {} cannot be read: {e}", path.display()))?;
    if lifeline_protocol::trailer::SignedTrailer::find(&bytes).is_ok() {
        return Err(format!(
            "{} is already personalized; configure a stock applet",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Whether a stock applet pins this operator's key (a release build made
/// with `LIFELINE_OPERATOR_KEY`), found by looking for the key's hex in
/// the executable: a build pins the key as that very text.
pub fn pins_operator_key(stock: &[u8], operator_key: &[u8; 32]) -> bool {
    let needle = lifeline_protocol::hex::encode(operator_key);
    let needle = needle.as_bytes();
    // Candidates start with the needle's first byte; most bytes are not.
    stock
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == needle[0])
        .any(|(i, _)| stock[i..].starts_with(needle))
}

/// What `gateway serve` found a stock applet to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockCheck {
    /// Its platform.
    pub platform: String,
    /// Where it is.
    pub path: PathBuf,
    /// Whether it pins this operator's key (a release build for this
    /// operator); if not, its end users are told its publisher cannot be
    /// verified.
    pub pinned: bool,
    /// Its size in bytes (what every end user downloads).
    pub size: u64,
    /// Whether it carries a symbol table (an unstripped build, several
    /// times the size it needs; Linux executables only).
    pub unstripped: bool,
}

/// Whether an ELF executable still has its symbol table (`.symtab` among
/// its section names): a build not stripped for download.
pub fn unstripped(stock: &[u8]) -> bool {
    stock.starts_with(b"\x7fELF") && stock.windows(8).any(|w| w == b".symtab\0")
}

/// Checks every stock applet this node serves (the configured ones, and
/// the default one for this platform), once at start, so `gateway serve`
/// can say which are development builds. Missing applets are skipped:
/// they are reported when someone downloads them.
pub async fn check_stock_applets(config: &Config, operator_key: &[u8; 32]) -> Vec<StockCheck> {
    let mut platforms: Vec<String> = config.applets.iter().map(|(p, _)| p.clone()).collect();
    let here = crate::config::this_platform();
    if !platforms.contains(&here) {
        platforms.push(here);
    }
    let mut found = Vec::new();
    for platform in platforms {
        let Some(path) = stock_path(config, &platform) else {
            continue;
        };
        let Ok(bytes) = stock_applet(config, &platform).await else {
            continue;
        };
        let key = *operator_key;
        let size = bytes.len() as u64;
        let (pinned, unstripped) = tokio::task::spawn_blocking(move || {
            (pins_operator_key(&bytes, &key), unstripped(&bytes))
        })
        .await
        .unwrap_or((false, false));
        found.push(StockCheck {
            platform,
            path,
            pinned,
            size,
            unstripped,
        });
    }
    found
}

/// The stock applet with this session's signed trailer appended.
pub fn personalize(
    gw: &Gateway,
    rec: &SessionRecord,
    applet_secret: [u8; 32],
    nodes: &[DirectoryNode],
    mut stock: Vec<u8>,
) -> Vec<u8> {
    let body = TrailerBody {
        guid: rec.guid,
        operator_name: gw.identity.operator_name.clone(),
        // Every live node can serve the directory, so the applet still
        // finds one if the node that issued it is down.
        directory_urls: nodes
            .iter()
            .take(MAX_DIRECTORY_URLS)
            .map(|n| format!("https://{}/api/v1/directory", n.addr))
            .collect(),
        operator_ca_der: gw.identity.ca_cert.to_vec(),
        operator_key: gw.identity.operator_key(),
        console_pin: rec.console_pin,
        applet_secret,
        expires_at_ms: rec.expires_at_ms.max(0) as u64,
        permissions: rec.permissions,
        technician_name: rec.technician_name.clone().unwrap_or_default(),
        // What the session is about: a technician's label, or what the
        // end user wrote on a channel's page (whose label is their name).
        label: if rec.channel.is_some() {
            rec.problem.clone()
        } else {
            rec.label.clone()
        },
        // The signature covers the program it is attached to.
        image_sha256: lifeline_tls::sha256(&stock),
    };
    stock.extend(body.to_trailer(|m| gw.identity.sign(m)));
    stock
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_elf_with_a_symbol_table_is_unstripped_and_nothing_else_is() {
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.extend_from_slice(b"\0.text\0.shstrtab\0");
        assert!(!unstripped(&elf));
        elf.extend_from_slice(b".symtab\0.strtab\0");
        assert!(unstripped(&elf));
        assert!(!unstripped(b"MZ\x90\0.symtab\0"), "not an ELF file");
    }
}
