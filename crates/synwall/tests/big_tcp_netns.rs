//! BIG TCP through a backend: a client whose veth sends GSO super-packets of up to 200 000 bytes
//! (IPv6 payload length field 0) uploads 32 MiB to a protected server. The backend's tc program
//! passes those packets untouched (`pass_big_gro`) instead of dropping them as malformed, which
//! stalled such a connection. IPv6 only: Debian 12's iproute2 cannot set `gso_ipv4_max_size`
//! (the IPv4 rule is the same code path; the engine's tests cover both families).
//!
//! Needs root (CI=true: fail, else skip with a message).

use anyhow::{ensure, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use synwall_testkit::deploy::{write_secret, LAB_SECRET_FILL};
use synwall_testkit::synwall;
use synwall_testkit::{require_privileges, unique_prefix, veth, Daemon, Netns};

const PORT: u16 = 9000;
const SIZE: usize = 32 << 20;

#[test]
fn backend_passes_big_tcp_super_packets() -> Result<()> {
    if !require_privileges("backend_passes_big_tcp_super_packets") {
        return Ok(());
    }
    let p = unique_prefix();
    let client = Netns::create(&format!("{p}c"))?;
    let host = Netns::create(&format!("{p}s"))?;
    host.sysctl("net.ipv4.tcp_syncookies", "1")?;
    veth(&client, "c0", &host, "s0")?;
    // GSO needs TX checksum offload, which veth() turns off for XDP's sake; no XDP here.
    client.run(&["ethtool", "-K", "c0", "tx", "on"])?;
    client.run(&["ip", "link", "set", "dev", "c0", "gso_max_size", "200000"])?;
    host.run(&["ip", "link", "set", "dev", "s0", "gro_max_size", "200000"])?;
    client.addr("c0", "fd77::1/64")?;
    host.addr("s0", "fd77::2/64")?;
    host.run(&["ip", "link", "set", "lo", "up"])?;

    let dir = tempfile::tempdir()?;
    let key = dir.path().join("master.key");
    write_secret(&key, LAB_SECRET_FILL)?;
    let backend = Daemon::start(
        &host,
        synwall(),
        &[
            "backend",
            "--iface",
            "s0",
            "--service",
            &format!("[fd77::2/128]:{PORT}"),
            "--secret-file",
            key.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    )?;

    let addr: SocketAddr = format!("[fd77::2]:{PORT}").parse()?;
    let listener = host.listen(addr)?;
    let server = std::thread::spawn(move || -> std::io::Result<usize> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(n),
                k => n += k,
            }
        }
    });
    client
        .enter(move || -> std::io::Result<()> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_write_timeout(Some(Duration::from_secs(15)))?;
            s.write_all(&vec![0x5a; SIZE])?;
            s.shutdown(std::net::Shutdown::Write)
        })?
        .context("upload (it stalls when the super-packets are dropped)")?;
    let got = server.join().expect("server thread")?;
    let c = backend
        .stop()?
        .remove("backend")
        .context("no backend counters")?;
    eprintln!("backend {c}");
    ensure!(got == SIZE, "the server received {got} of {SIZE} bytes");
    ensure!(
        c.get("pass_big_gro") > 0,
        "no super-packet reached the backend (is GSO on?): {c}"
    );
    ensure!(c.get("drop_ip_malformed") == 0, "{c}");
    Ok(())
}
