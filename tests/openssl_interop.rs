//! Keys and signatures interoperate with OpenSSL both ways.

use crate::util::*;
use base64::Engine as _;
use std::process::Command;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn openssl() -> Command {
    Command::new("openssl")
}

#[test]
fn an_openssl_key_seals_and_openssl_verifies_the_signature_over_pae() {
    let env = Env::new();
    let root = env.path("rootfs");
    small_tree(&root);
    let key = env.path("k.pem");
    let public = env.path("k.pub");
    sh(openssl().args(["genpkey", "-algorithm", "ed25519", "-out"]).arg(&key));
    sh(openssl().args(["pkey", "-pubout", "-in"]).arg(&key).arg("-out").arg(&public));
    let seal = env.path("s.json");
    env.seal(&root, &key, &seal, &[]);
    env.verify(0, &root, &seal, &public, &[]);

    // OpenSSL checks our signature over the DSSE PAE bytes.
    let envl: serde_json::Value = serde_json::from_slice(&std::fs::read(&seal).unwrap()).unwrap();
    let payload = B64.decode(envl["payload"].as_str().unwrap()).unwrap();
    let sig = B64.decode(envl["signatures"][0]["sig"].as_str().unwrap()).unwrap();
    std::fs::write(env.path("pae"), rootseal::seal::pae(rootseal::seal::PAYLOAD_TYPE, &payload)).unwrap();
    std::fs::write(env.path("sig"), &sig).unwrap();
    let out = sh(openssl()
        .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
        .arg(&public)
        .arg("-in")
        .arg(env.path("pae"))
        .arg("-sigfile")
        .arg(env.path("sig")));
    assert!(out.contains("Signature Verified Successfully"), "{out}");

    // ...and refuses it over the raw payload (the signature covers PAE, not the payload).
    std::fs::write(env.path("raw"), &payload).unwrap();
    let st = openssl()
        .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
        .arg(&public)
        .arg("-in")
        .arg(env.path("raw"))
        .arg("-sigfile")
        .arg(env.path("sig"))
        .output()
        .unwrap();
    assert!(!st.status.success());

    // The keyid is the SHA-256 of the SPKI DER, as openssl computes it.
    let der = Command::new("openssl").args(["pkey", "-pubin", "-outform", "DER", "-in"]).arg(&public).output().unwrap();
    use sha2::Digest;
    assert_eq!(envl["signatures"][0]["keyid"].as_str().unwrap(), format!("{:x}", sha2::Sha256::digest(&der.stdout)));
}

#[test]
fn a_seal_signed_by_openssl_over_a_rootseal_statement_verifies() {
    let env = Env::new();
    let root = env.path("rootfs");
    small_tree(&root);
    let key = env.path("k.pem");
    let public = env.path("k.pub");
    sh(openssl().args(["genpkey", "-algorithm", "ed25519", "-out"]).arg(&key));
    sh(openssl().args(["pkey", "-pubout", "-in"]).arg(&key).arg("-out").arg(&public));

    // The statement rootseal would sign, signed instead by openssl.
    let m = rootseal::walk::walk(&root, &Default::default()).unwrap();
    let payload = rootseal::seal::statement(&rootseal::seal::SealRequest {
        manifest: &m,
        name: "registry.example/app@sha256:abc",
        created: std::time::SystemTime::now(),
        expires: None,
        image: None,
    });
    std::fs::write(env.path("pae"), rootseal::seal::pae(rootseal::seal::PAYLOAD_TYPE, &payload)).unwrap();
    sh(openssl()
        .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
        .arg(&key)
        .arg("-in")
        .arg(env.path("pae"))
        .arg("-out")
        .arg(env.path("sig")));
    let sig = std::fs::read(env.path("sig")).unwrap();
    assert_eq!(sig.len(), 64);
    let seal = env.path("openssl-seal.json");
    std::fs::write(&seal, rootseal::seal::envelope(&payload, &[(String::new(), sig)])).unwrap();
    let (out, _) = env.verify(0, &root, &seal, &public, &[]);
    assert!(out.contains("registry.example/app@sha256:abc"), "{out}");
}
