// Package sshhost is the SSH flavour of reconcilers.Host: the same
// reconcilers drive a VPS from an operator's laptop or CI.
package sshhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"settle/reconcilers"
)

// Defaults for Config's durations.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultKeepalive      = 15 * time.Second
)

// maxSessions stays under OpenSSH's MaxSessions (10) so parallel observers
// queue here instead of being refused by the server.
const maxSessions = 8

// Config says where and as whom to connect.
type Config struct {
	User       string
	Addr       string // host:port
	KnownHosts string // the only source of trust; required
	Identity   string // private key file; empty means the agent at SSH_AUTH_SOCK
	// ConnectTimeout bounds TCP connect plus the SSH handshake: a server
	// that accepts and never speaks fails within it.
	ConnectTimeout time.Duration
	// Keepalive is how often the peer must answer; one silent interval
	// closes the connection, failing what runs on it.
	Keepalive time.Duration
	Log       *slog.Logger
}

// Host runs commands, moves files and dials through one SSH connection,
// shared by all goroutines and redialled when it drops.
type Host struct {
	cfg   Config
	keys  *hostKeys
	auth  ssh.AuthMethod
	agent net.Conn // nil without the agent
	sem   chan struct{}

	mu     sync.Mutex // held while connecting, so there is one connection
	client *ssh.Client
	closed bool
}

var _ reconcilers.Host = (*Host)(nil)

// Dial checks cfg, connects and proves the remote shell quotes like POSIX
// sh. The returned Host reconnects by itself; Close releases it.
func Dial(ctx context.Context, cfg Config) (*Host, error) {
	if cfg.User == "" || cfg.Addr == "" || cfg.KnownHosts == "" {
		return nil, errors.New("ssh: user, address and known_hosts are all required")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("ssh: address %q: %w", cfg.Addr, err)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Keepalive <= 0 {
		cfg.Keepalive = DefaultKeepalive
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	h := &Host{cfg: cfg, sem: make(chan struct{}, maxSessions)}
	var err error
	if h.keys, err = loadKnownHosts(cfg.KnownHosts); err != nil {
		return nil, fmt.Errorf("ssh %s: %w", h.target(), err)
	}
	if err := h.setAuth(); err != nil {
		return nil, fmt.Errorf("ssh %s: %w", h.target(), err)
	}
	if _, err := h.conn(ctx); err != nil {
		h.Close()
		return nil, err
	}
	if err := h.probeShell(ctx); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

func (h *Host) target() string { return h.cfg.User + "@" + h.cfg.Addr }

func (h *Host) String() string { return "ssh " + h.target() }

func (h *Host) setAuth() error {
	if h.cfg.Identity != "" {
		s, err := identity(h.cfg.Identity)
		if err != nil {
			return err
		}
		h.auth = ssh.PublicKeys(s)
		return nil
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return errors.New("no host.identity and SSH_AUTH_SOCK is not set: name a key file or start ssh-agent")
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		return fmt.Errorf("connect to ssh-agent at SSH_AUTH_SOCK: %w", err)
	}
	h.agent = c
	h.auth = ssh.PublicKeysCallback(agent.NewClient(c).Signers)
	return nil
}

// Close ends the connection; later calls fail.
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	var err error
	if h.client != nil {
		err = h.client.Close()
		h.client = nil
	}
	if h.agent != nil {
		h.agent.Close()
	}
	return err
}

// conn returns the live client, connecting when there is none.
func (h *Host) conn(ctx context.Context) (*ssh.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("ssh %s: connection closed", h.target())
	}
	if h.client != nil {
		return h.client, nil
	}
	c, err := h.connect(ctx)
	if err != nil {
		return nil, err
	}
	h.client = c
	go h.watch(c)
	return c, nil
}

// drop forgets c, so the next call reconnects.
func (h *Host) drop(c *ssh.Client) {
	c.Close()
	h.mu.Lock()
	if h.client == c {
		h.client = nil
	}
	h.mu.Unlock()
}

func (h *Host) connect(ctx context.Context) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	tcp, err := d.DialContext(ctx, "tcp", h.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: connect: %w", h.target(), err)
	}
	// The deadline covers the handshake: ssh.NewClientConn has none.
	deadline, _ := ctx.Deadline()
	tcp.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { tcp.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	known := h.keys.known(h.cfg.Addr, tcp.RemoteAddr())
	// Kept apart because the handshake wraps it in words of its own.
	var keyErr error
	cfg := &ssh.ClientConfig{
		User: h.cfg.User,
		Auth: []ssh.AuthMethod{h.auth},
		HostKeyCallback: func(addr string, remote net.Addr, key ssh.PublicKey) error {
			keyErr = h.keys.check(addr, remote, key)
			return keyErr
		},
		HostKeyAlgorithms: algorithms(known),
	}
	c, chans, reqs, err := ssh.NewClientConn(tcp, h.cfg.Addr, cfg)
	if err != nil {
		tcp.Close()
		if keyErr != nil {
			return nil, fmt.Errorf("ssh %s: %w", h.target(), keyErr)
		}
		return nil, h.handshakeErr(ctx, err, known)
	}
	tcp.SetDeadline(time.Time{})
	h.cfg.Log.Debug("ssh connected", "host", h.target(), "server", string(c.ServerVersion()))
	return ssh.NewClient(c, chans, reqs), nil
}

func (h *Host) handshakeErr(ctx context.Context, err error, known []knownKey) error {
	var ne net.Error
	switch {
	case strings.Contains(err.Error(), "no common algorithm for host key"):
		return fmt.Errorf("ssh %s: %w: the server offers none of the key types %s holds for it (%s); refusing to connect, as for a changed key",
			h.target(), ErrHostKeyMismatch, h.keys.file, strings.Join(algorithms(known), ", "))
	case ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("ssh %s: handshake did not finish within %s (is an SSH server listening there?): %w",
			h.target(), h.cfg.ConnectTimeout, err)
	case strings.Contains(err.Error(), "unable to authenticate"):
		return fmt.Errorf("ssh %s: the server refused our key for user %s: %w", h.target(), h.cfg.User, err)
	}
	return fmt.Errorf("ssh %s: handshake: %w", h.target(), err)
}

// watch sends keepalives until c dies, and closes c when the peer stops
// answering: a vanished VPS must fail commands, not hang them.
func (h *Host) watch(c *ssh.Client) {
	dead := make(chan struct{})
	go func() { c.Wait(); close(dead) }()
	t := time.NewTicker(h.cfg.Keepalive)
	defer t.Stop()
	for {
		select {
		case <-dead:
			h.drop(c)
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		timer := time.NewTimer(h.cfg.Keepalive)
		select {
		case err := <-reply:
			if err != nil {
				h.cfg.Log.Warn("ssh keepalive failed; reconnecting on next use", "host", h.target(), "err", err)
				h.drop(c)
			}
		case <-timer.C:
			h.cfg.Log.Warn("ssh peer stopped answering; closing the connection", "host", h.target(), "after", h.cfg.Keepalive)
			h.drop(c)
		case <-dead:
		}
		timer.Stop()
	}
}

// probeShell proves the remote login shell parses Quote's output as POSIX
// sh does; csh or fish would read the same bytes differently.
func (h *Host) probeShell(ctx context.Context) error {
	const want = `a'b"c\d $(x) ` + "`y` !z\n*"
	out, err := h.Run(ctx, reconcilers.Cmd{Argv: []string{"printf", "%s", want}})
	if err != nil {
		return fmt.Errorf("ssh %s: run a first command: %w", h.target(), err)
	}
	if string(out) != want {
		return fmt.Errorf("ssh %s: the login shell of %s does not quote like POSIX sh; settle needs sh, bash, dash or zsh there", h.target(), h.cfg.User)
	}
	return nil
}
