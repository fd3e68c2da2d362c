//! synwall-netns against the real kernel: namespaces and veth links, the `AF_PACKET` sender and
//! capture. Needs root (CI=true: fail, else skip with a message).

use synwall_netns::packet::{Capture, Captured, RawSender};
use synwall_netns::{unique_prefix, veth, Netns};
use synwall_testkit::require_privileges;

#[test]
fn two_namespaces_talk_over_veth() {
    if !require_privileges("two_namespaces_talk_over_veth") {
        return;
    }
    let p = unique_prefix();
    let a = Netns::create(&format!("{p}a")).unwrap();
    let b = Netns::create(&format!("{p}b")).unwrap();
    veth(&a, "va", &b, "vb").unwrap();
    a.addr("va", "10.99.0.1/24").unwrap();
    b.addr("vb", "10.99.0.2/24").unwrap();
    let listener = b
        .enter(|| std::net::TcpListener::bind("10.99.0.2:7000").unwrap())
        .unwrap();
    let server = std::thread::spawn(move || {
        use std::io::Read;
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf
    });
    a.enter(|| {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect("10.99.0.2:7000").unwrap();
        c.write_all(b"hello").unwrap();
    })
    .unwrap();
    assert_eq!(server.join().unwrap(), "hello");
    let path = a.path();
    drop(a);
    assert!(!path.exists(), "namespace removed on drop");
}

#[test]
fn capture_sees_frames_with_their_vlan_tags() {
    if !require_privileges("capture_sees_frames_with_their_vlan_tags") {
        return;
    }
    let p = unique_prefix();
    let a = Netns::create(&format!("{p}a")).unwrap();
    let b = Netns::create(&format!("{p}b")).unwrap();
    veth(&a, "va", &b, "vb").unwrap();
    let cap_b = b.enter(|| Capture::open("vb")).unwrap().unwrap();
    let (tx, cap_a) = a
        .enter(|| (RawSender::open("va").unwrap(), Capture::open("va").unwrap()))
        .unwrap();
    // A local-experimental EtherType, untagged and behind an 802.1Q tag (the receiving
    // kernel moves the tag out of the data; the capture puts it back).
    let mut plain = vec![0xff; 6];
    plain.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x88, 0xb5]);
    plain.extend_from_slice(b"synwall capture test, untagged.........");
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x07, 0x88, 0xb5]);
    tagged.extend_from_slice(b"synwall capture test, tagged...........");
    tx.send(&plain).unwrap();
    tx.send(&tagged).unwrap();
    let limit = std::time::Duration::from_secs(2);
    let got: Vec<Captured> = cap_b
        .drain(std::time::Duration::from_millis(300), limit)
        .unwrap()
        .into_iter()
        .filter(|c| c.frame.windows(20).any(|w| w == b"synwall capture test"))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|c| !c.outgoing));
    assert_eq!(got[0].frame, plain);
    assert_eq!(got[1].frame, tagged);
    let sent: Vec<Captured> = cap_a
        .drain(std::time::Duration::from_millis(100), limit)
        .unwrap()
        .into_iter()
        .filter(|c| c.frame == plain || c.frame == tagged)
        .collect();
    assert_eq!(sent.len(), 2, "the sender's side sees both going out");
    assert!(sent.iter().all(|c| c.outgoing));
}
