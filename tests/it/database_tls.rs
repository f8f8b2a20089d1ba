//! `sslmode=require` really uses TLS (rustls) and verifies the server, as it
//! must against a managed database. The local server's certificate is
//! Debian's self-signed "snakeoil" one for `localhost`.

use std::path::PathBuf;
use std::time::Duration;

use authrelay::config::DatabaseConfig;
use authrelay::db::Database;
use authrelay_testkit::PG_ADMIN_URL;
use secrecy::SecretString;

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

fn settings(url: &str, ca_file: Option<&str>) -> DatabaseConfig {
    DatabaseConfig {
        url: SecretString::from(url.to_owned()),
        ca_file: ca_file.map(PathBuf::from),
        pool_size: 2,
        connect_timeout: Duration::from_secs(3),
    }
}

async fn server_has_tls() {
    let (client, conn) = tokio_postgres::connect(PG_ADMIN_URL, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(ssl, "on", "the test server must have TLS enabled (Debian's default)");
    assert!(std::path::Path::new(SNAKEOIL).exists(), "{SNAKEOIL} is the server's certificate");
}

#[tokio::test]
async fn sslmode_require_connects_over_tls_when_the_server_certificate_is_trusted() {
    server_has_tls().await;
    let db = Database::new(&settings("postgres://postgres@localhost:5432/postgres?sslmode=require", Some(SNAKEOIL)))
        .unwrap();
    let pool = db.pool().await.expect("TLS connection");
    let client = pool.get().await.unwrap();
    let ssl: bool =
        client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert!(ssl, "the session is encrypted");
}

#[tokio::test]
async fn sslmode_require_refuses_an_untrusted_certificate_instead_of_falling_back_to_plaintext() {
    server_has_tls().await;
    // Trust only the public CA bundle, which does not hold the self-signed certificate.
    let public_cas = Some("/etc/ssl/certs/ca-certificates.crt");
    let db =
        Database::new(&settings("postgres://postgres@localhost:5432/postgres?sslmode=require", public_cas)).unwrap();
    let err = db.pool().await.expect_err("an untrusted certificate is refused");
    let message = format!("{err:#}");
    assert!(message.contains("TLS") && message.contains("certificate"), "{message}");
}
