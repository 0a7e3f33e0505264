//! Values derived from the end-to-end TLS exporter.
//!
//! Both ends export [`EXPORTER_LEN`] bytes with [`EXPORTER_LABEL`] and the
//! session GUID as context. The exporter is unique to this TLS session and
//! unknown to the relaying gateway, so:
//! * the applet's [`applet_proof`] (an HMAC keyed by the applet secret) shows
//!   the console that it talks to the holder of the personalized applet, and
//!   cannot be replayed into another TLS session;
//! * the [`short_auth_string`] is the same on both screens only if no one
//!   terminated the TLS in between; people can compare it by phone.

use crate::guid::SessionGuid;
use crate::relay::Role;
use ring::hmac;

/// TLS exporter label for everything in this module.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-lifeline-session-v1";
/// Exporter output length.
pub const EXPORTER_LEN: usize = 32;

/// The exporter context: the GUID's bytes.
pub fn exporter_context(guid: &SessionGuid) -> &[u8] {
    guid.as_bytes()
}

/// HMAC-SHA256(applet_secret, "lifeline applet proof v1" ‖ exporter).
pub fn applet_proof(applet_secret: &[u8; 32], exporter: &[u8; EXPORTER_LEN]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, applet_secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(b"lifeline applet proof v1");
    ctx.update(exporter);
    let tag = ctx.sign();
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Checks an applet proof in constant time.
pub fn verify_applet_proof(
    applet_secret: &[u8; 32],
    exporter: &[u8; EXPORTER_LEN],
    mac: &[u8; 32],
) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, applet_secret);
    let mut msg = b"lifeline applet proof v1".to_vec();
    msg.extend_from_slice(exporter);
    hmac::verify(&key, &msg, mac).is_ok()
}

/// TLS exporter label of a direct path's own TLS (its context is the GUID
/// too).
pub const DIRECT_EXPORTER_LABEL: &[u8] = b"EXPORTER-lifeline-direct-v1";

fn binding_message(guid: &SessionGuid, role: Role, path_exporter: &[u8; EXPORTER_LEN]) -> Vec<u8> {
    let mut msg = b"lifeline binding proof v1".to_vec();
    msg.push(match role {
        Role::Applet => 1,
        Role::Console => 2,
    });
    msg.extend_from_slice(guid.as_bytes());
    msg.extend_from_slice(path_exporter);
    msg
}

/// The binding proof an end sends first on a new direct path:
/// HMAC-SHA256 keyed by the *relayed* session's exporter (known only to the
/// two ends of that session) over the GUID, the sender's role and the
/// *new* path's own TLS exporter. It shows "I am the other end of the
/// relayed session" and cannot be replayed on any other connection, since
/// every TLS connection has its own exporter.
pub fn binding_proof(
    relayed_exporter: &[u8; EXPORTER_LEN],
    guid: &SessionGuid,
    role: Role,
    path_exporter: &[u8; EXPORTER_LEN],
) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, relayed_exporter);
    let tag = hmac::sign(&key, &binding_message(guid, role, path_exporter));
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Checks a binding proof in constant time.
pub fn verify_binding_proof(
    relayed_exporter: &[u8; EXPORTER_LEN],
    guid: &SessionGuid,
    role: Role,
    path_exporter: &[u8; EXPORTER_LEN],
    mac: &[u8; 32],
) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, relayed_exporter);
    hmac::verify(&key, &binding_message(guid, role, path_exporter), mac).is_ok()
}

/// A direct path's id, the same on both ends: the first 8 bytes of
/// SHA-256 over a label and the path's own TLS exporter. It names the path
/// in [`crate::e2e::Control::Switch`] without revealing the exporter.
pub fn path_id(path_exporter: &[u8; EXPORTER_LEN]) -> [u8; 8] {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        &[b"lifeline path id v1".as_slice(), path_exporter].concat(),
    );
    let mut id = [0u8; 8];
    id.copy_from_slice(&d.as_ref()[..8]);
    id
}

/// TLS exporter label of the outer TLS between an applet and a gateway,
/// which the admission proof signs (its context is the GUID).
pub const ADMISSION_EXPORTER_LABEL: &[u8] = b"EXPORTER-lifeline-admission-v1";

const ADMISSION_SEED_LABEL: &[u8] = b"lifeline gateway admission key v1";
const ADMISSION_CONTEXT: &[u8] = b"lifeline gateway admission v1\0";

/// The applet's admission key pair, derived from the applet secret with
/// HMAC-SHA256 (a one-way step: the gateway, which keeps only the public
/// half, learns nothing about the secret the end-to-end proof uses).
fn admission_key_pair(applet_secret: &[u8; 32]) -> ring::signature::Ed25519KeyPair {
    let key = hmac::Key::new(hmac::HMAC_SHA256, applet_secret);
    let seed = hmac::sign(&key, ADMISSION_SEED_LABEL);
    // Any 32 bytes are a valid Ed25519 seed.
    ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed.as_ref()[..32])
        .expect("any 32 bytes are an Ed25519 seed")
}

/// The public key the portal stores for a session so the gateway can check
/// that an applet holds the session's applet file (see [`admission_proof`]).
pub fn admission_public_key(applet_secret: &[u8; 32]) -> [u8; 32] {
    use ring::signature::KeyPair;
    let mut out = [0u8; 32];
    out.copy_from_slice(admission_key_pair(applet_secret).public_key().as_ref());
    out
}

fn admission_message(guid: &SessionGuid, outer_exporter: &[u8; EXPORTER_LEN]) -> Vec<u8> {
    let mut msg = ADMISSION_CONTEXT.to_vec();
    msg.extend_from_slice(guid.as_bytes());
    msg.extend_from_slice(outer_exporter);
    msg
}

/// What an applet sends in its hello to take the applet's end of a session
/// at a gateway: an Ed25519 signature, by the key derived from the applet
/// secret, over the GUID and the exporter of *this* outer TLS connection.
/// Someone who only saw the GUID (it is printed by `--verify`) cannot make
/// it, and a proof seen once cannot be replayed on another connection.
pub fn admission_proof(
    applet_secret: &[u8; 32],
    guid: &SessionGuid,
    outer_exporter: &[u8; EXPORTER_LEN],
) -> [u8; 64] {
    let sig = admission_key_pair(applet_secret).sign(&admission_message(guid, outer_exporter));
    let mut out = [0u8; 64];
    out.copy_from_slice(sig.as_ref());
    out
}

/// Checks an admission proof against the stored public key.
pub fn verify_admission(
    public_key: &[u8; 32],
    guid: &SessionGuid,
    outer_exporter: &[u8; EXPORTER_LEN],
    proof: &[u8],
) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(&admission_message(guid, outer_exporter), proof)
        .is_ok()
}

/// Six decimal digits shown as `123 456` on both ends.
pub fn short_auth_string(exporter: &[u8; EXPORTER_LEN]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, exporter);
    let tag = hmac::sign(&key, b"lifeline short authentication string v1");
    let b = tag.as_ref();
    let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

/// Compares two secrets without an early exit, so the time taken does not
/// tell an attacker how many leading bytes matched.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_verifies_only_with_same_inputs() {
        let mac = applet_proof(&[1; 32], &[2; 32]);
        assert!(verify_applet_proof(&[1; 32], &[2; 32], &mac));
        assert!(!verify_applet_proof(&[1; 32], &[3; 32], &mac));
        assert!(!verify_applet_proof(&[4; 32], &[2; 32], &mac));
    }

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn binding_proof_is_bound_to_key_guid_role_and_path() {
        let g = SessionGuid::from_bytes([9; 16]);
        let other = SessionGuid::from_bytes([8; 16]);
        let mac = binding_proof(&[1; 32], &g, Role::Applet, &[2; 32]);
        assert!(verify_binding_proof(
            &[1; 32],
            &g,
            Role::Applet,
            &[2; 32],
            &mac
        ));
        assert!(!verify_binding_proof(
            &[7; 32],
            &g,
            Role::Applet,
            &[2; 32],
            &mac
        ));
        assert!(!verify_binding_proof(
            &[1; 32],
            &other,
            Role::Applet,
            &[2; 32],
            &mac
        ));
        assert!(!verify_binding_proof(
            &[1; 32],
            &g,
            Role::Console,
            &[2; 32],
            &mac
        ));
        assert!(!verify_binding_proof(
            &[1; 32],
            &g,
            Role::Applet,
            &[3; 32],
            &mac
        ));
    }

    #[test]
    fn admission_proof_is_bound_to_secret_guid_and_connection() {
        let g = SessionGuid::from_bytes([9; 16]);
        let pk = admission_public_key(&[1; 32]);
        assert_ne!(pk, admission_public_key(&[2; 32]));
        let proof = admission_proof(&[1; 32], &g, &[3; 32]);
        assert!(verify_admission(&pk, &g, &[3; 32], &proof));
        assert!(
            !verify_admission(&pk, &g, &[4; 32], &proof),
            "other connection"
        );
        let other = SessionGuid::from_bytes([8; 16]);
        assert!(!verify_admission(&pk, &other, &[3; 32], &proof));
        let forged = admission_proof(&[2; 32], &g, &[3; 32]);
        assert!(!verify_admission(&pk, &g, &[3; 32], &forged));
        assert!(!verify_admission(&pk, &g, &[3; 32], &proof[..63]));
        assert!(!verify_admission(&pk, &g, &[3; 32], b""));
    }

    #[test]
    fn sas_is_six_digits_and_depends_on_exporter() {
        let a = short_auth_string(&[1; 32]);
        assert_eq!(a.len(), 7);
        assert_ne!(a, short_auth_string(&[2; 32]));
    }
}
