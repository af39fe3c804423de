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

/// `rootseal keygen` writes PKCS#8 v1, as `openssl genpkey` does: OpenSSL 3.0 and Python
/// `cryptography` (which both refuse v2, "unsupported" / "extra data") load it, and a seal they
/// sign with it over a rootseal statement verifies.
#[test]
fn a_keygen_key_loads_in_openssl_and_python_cryptography_and_their_signatures_verify() {
    let env = Env::new();
    let root = env.path("rootfs");
    small_tree(&root);
    let (key, public) = env.keygen("ci");
    let m = rootseal::walk::walk(&root, &Default::default()).unwrap();
    let payload = rootseal::seal::statement(&rootseal::seal::SealRequest {
        manifest: &m,
        name: "registry.example/app:1",
        created: std::time::SystemTime::now(),
        expires: None,
        image: None,
    });
    let pae = env.path("pae");
    std::fs::write(&pae, rootseal::seal::pae(rootseal::seal::PAYLOAD_TYPE, &payload)).unwrap();

    // OpenSSL reads the key, derives the same public key, and signs.
    let derived = sh(openssl().args(["pkey", "-pubout", "-in"]).arg(&key));
    assert_eq!(derived, std::fs::read_to_string(&public).unwrap(), "openssl derives the keygen public key");
    sh(openssl()
        .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
        .arg(&key)
        .arg("-in")
        .arg(&pae)
        .arg("-out")
        .arg(env.path("sig.openssl")));

    // Python cryptography reads the key and signs.
    let py = "import sys\n\
              from cryptography.hazmat.primitives.serialization import load_pem_private_key\n\
              k = load_pem_private_key(open(sys.argv[1], 'rb').read(), password=None)\n\
              open(sys.argv[3], 'wb').write(k.sign(open(sys.argv[2], 'rb').read()))\n";
    sh(Command::new("python3").arg("-c").arg(py).arg(&key).arg(&pae).arg(env.path("sig.python")));

    for signer in ["openssl", "python"] {
        let sig = std::fs::read(env.path(&format!("sig.{signer}"))).unwrap();
        assert_eq!(sig.len(), 64, "{signer} signature");
        let seal = env.path(&format!("{signer}.seal.json"));
        std::fs::write(&seal, rootseal::seal::envelope(&payload, &[(String::new(), sig)])).unwrap();
        let (out, _) = env.verify(0, &root, &seal, &public, &[]);
        assert!(out.contains("registry.example/app:1"), "{signer}: {out}");
    }
}
