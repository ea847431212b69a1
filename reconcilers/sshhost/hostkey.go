package sshhost

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Host key refusals, for errors.Is. There is deliberately no way to skip
// the check: settle can drop traffic and swap databases.
var (
	ErrUnknownHost     = errors.New("host key not known")
	ErrHostKeyMismatch = errors.New("HOST KEY MISMATCH")
)

type knownKey = knownhosts.KnownKey

// hostKeys checks server keys against one known_hosts file, as strictly as
// OpenSSH with StrictHostKeyChecking=yes.
type hostKeys struct {
	file string
	cb   ssh.HostKeyCallback
}

func loadKnownHosts(file string) (*hostKeys, error) {
	cb, err := knownhosts.New(file)
	if errors.Is(err, fs.ErrNotExist) {
		// Refusing later, with the line to add, helps more than refusing now.
		cb, err = knownhosts.New()
	}
	if err != nil {
		return nil, fmt.Errorf("read known_hosts %s: %w", file, err)
	}
	return &hostKeys{file: file, cb: cb}, nil
}

// known returns the keys known_hosts holds for addr as seen at remote. The
// knownhosts package has no lookup, but a key that cannot match makes it
// list what would have.
func (h *hostKeys) known(addr string, remote net.Addr) []knownKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if errors.As(h.cb(addr, remote, probe), &ke) {
		return ke.Want
	}
	return nil
}

// algorithms limits the client to host key algorithms known_hosts holds for
// the host: a server that offers ECDSA first must still be checked against
// the ed25519 key we know, not refused as unknown. nil (no restriction)
// when the host is unknown, so the refusal can show the offered key.
func algorithms(keys []knownKey) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range keys {
		t := k.Key.Type()
		algs := []string{t}
		if t == ssh.KeyAlgoRSA {
			algs = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		}
		for _, a := range algs {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// check is the HostKeyCallback. Its refusals say what to do next.
func (h *hostKeys) check(addr string, remote net.Addr, key ssh.PublicKey) error {
	err := h.cb(addr, remote, key)
	if err == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("%w: %s offered %s %s, which %s:%d marks @revoked; refusing to connect",
			ErrHostKeyMismatch, addr, key.Type(), ssh.FingerprintSHA256(key), re.Revoked.Filename, re.Revoked.Line)
	case errors.As(err, &ke) && len(ke.Want) == 0:
		line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
		return fmt.Errorf("%w: %s has no entry for %s; refusing to connect. "+
			"If %s %s is that server's key (compare with `ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub` run on it), add this line to %s:\n%s",
			ErrUnknownHost, h.file, knownhosts.Normalize(addr), key.Type(), ssh.FingerprintSHA256(key),
			keyFileKind(key), h.file, line)
	case errors.As(err, &ke):
		var want []string
		for _, w := range ke.Want {
			want = append(want, fmt.Sprintf("%s:%d %s %s", w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key)))
		}
		return fmt.Errorf("%w for %s: the server offered %s %s but known_hosts holds %s; refusing to connect. "+
			"Someone may be intercepting the connection, or the host was reinstalled: verify the new key out of band before editing %s",
			ErrHostKeyMismatch, knownhosts.Normalize(addr), key.Type(), ssh.FingerprintSHA256(key), strings.Join(want, ", "), h.file)
	}
	return fmt.Errorf("check host key of %s: %w", addr, err)
}

// keyFileKind names the /etc/ssh/ssh_host_*_key file for a key type.
func keyFileKind(key ssh.PublicKey) string {
	switch t := key.Type(); {
	case t == ssh.KeyAlgoED25519:
		return "ed25519"
	case strings.HasPrefix(t, "ecdsa"):
		return "ecdsa"
	case t == ssh.KeyAlgoRSA:
		return "rsa"
	}
	return "*"
}

// identity reads a private key file, refusing one others can read the way
// OpenSSH does: a leaked deploy key is a leaked VPS.
func identity(path string) (ssh.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity %s is accessible by others (mode %#o); run chmod 600 on it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	var pm *ssh.PassphraseMissingError
	if errors.As(err, &pm) {
		return nil, fmt.Errorf("identity %s is passphrase-protected; load it into ssh-agent and leave host.identity unset", path)
	}
	if err != nil {
		// The parser's message never quotes key material.
		return nil, fmt.Errorf("parse identity %s: %w", path, err)
	}
	return s, nil
}
