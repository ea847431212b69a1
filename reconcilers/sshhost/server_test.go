package sshhost

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// testServer is an in-process SSH server that runs exec requests with the
// local sh, as sshd would run them with the user's login shell, and serves
// direct-tcpip. It is real SSH on the wire; only the process runner is ours.
type testServer struct {
	addr     string
	hostKeys []ssh.Signer
	execs    atomic.Int32 // exec requests seen: proves a refused client ran nothing
	mu       sync.Mutex
	lines    []string // every command line received, as sshd would log it
	conns    []*freezable
}

// freeze stops answering on every live connection, as a vanished peer;
// new connections are served normally.
func (s *testServer) freeze() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.frozen.Store(true)
	}
}

func genKey(t *testing.T, kind string) (crypto.Signer, ssh.Signer) {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, s
}

// clientKey writes a fresh private key file (mode 0600) and returns its path
// and the public key the server must accept.
func clientKey(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	k, s := genKey(t, "ed25519")
	blk, err := ssh.MarshalPrivateKey(k, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, s.PublicKey()
}

func startServer(t *testing.T, client ssh.PublicKey, hostKeys ...ssh.Signer) *testServer {
	t.Helper()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == string(client.Marshal()) {
				return nil, nil
			}
			return nil, io.EOF
		},
	}
	for _, k := range hostKeys {
		cfg.AddHostKey(k)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{addr: ln.Addr().String(), hostKeys: hostKeys}
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fc := &freezable{Conn: c}
			s.mu.Lock()
			s.conns = append(s.conns, fc)
			s.mu.Unlock()
			go s.serve(fc, cfg)
		}
	}()
	return s
}

// freezable stops delivering bytes once frozen, like a peer whose network
// vanished: nothing is refused, nothing is answered.
type freezable struct {
	net.Conn
	frozen atomic.Bool
}

func (f *freezable) Read(p []byte) (int, error) {
	n, err := f.Conn.Read(p)
	for f.frozen.Load() {
		// Swallow input until the client gives up and closes.
		if n, err = f.Conn.Read(p); err != nil {
			return 0, err
		}
	}
	return n, err
}

func (s *testServer) serve(c net.Conn, cfg *ssh.ServerConfig) {
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		c.Close()
		return
	}
	go func() {
		for r := range reqs {
			r.Reply(false, nil) // as OpenSSH answers keepalive@openssh.com
		}
	}()
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			go s.session(nc)
		case "direct-tcpip":
			go directTCPIP(nc)
		default:
			nc.Reject(ssh.UnknownChannelType, "no")
		}
	}
}

func (s *testServer) session(nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	for r := range reqs {
		if r.Type != "exec" {
			r.Reply(false, nil)
			continue
		}
		var p struct{ Command string }
		if ssh.Unmarshal(r.Payload, &p) != nil {
			r.Reply(false, nil)
			return
		}
		s.execs.Add(1)
		s.mu.Lock()
		s.lines = append(s.lines, p.Command)
		s.mu.Unlock()
		r.Reply(true, nil)
		go func() {
			for r := range reqs {
				r.Reply(false, nil) // signals: the channel close below ends sh
			}
		}()
		cmd := exec.Command("sh", "-c", p.Command)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		code := 0
		if err := cmd.Run(); err != nil {
			code = 255
			if ee, ok := err.(*exec.ExitError); ok && ee.Exited() {
				code = ee.ExitCode()
			}
		}
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(code)))
		return
	}
}

func directTCPIP(nc ssh.NewChannel) {
	var p struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if ssh.Unmarshal(nc.ExtraData(), &p) != nil {
		nc.Reject(ssh.ConnectionFailed, "bad payload")
		return
	}
	c, err := net.Dial("tcp", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		c.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	go func() { io.Copy(ch, c); ch.CloseWrite() }()
	io.Copy(c, ch)
	c.Close()
	ch.Close()
}

// knownHostsFile writes a known_hosts file with one line per key for addr.
func knownHostsFile(t *testing.T, addr string, keys ...ssh.PublicKey) string {
	t.Helper()
	var b []byte
	for _, k := range keys {
		b = append(b, knownhosts.Line([]string{knownhosts.Normalize(addr)}, k)+"\n"...)
	}
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
