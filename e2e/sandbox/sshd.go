package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SSHDBin is OpenSSH's server; it must be started by absolute path.
const SSHDBin = "/usr/sbin/sshd"

// SSHD is a real OpenSSH server for one sandbox: loopback only, its own
// host key, trusting one client key, so settle can be driven "remotely"
// against the same services.
type SSHD struct {
	Dir         string // DIR/ssh
	Addr        string // 127.0.0.1:PORT
	Port        int
	User        string // the user sshd runs as, the only one it can log in
	Identity    string // the client's private key (0600)
	KnownHosts  string // holds exactly this server's host key
	HostKeyLine string // that known_hosts line
	cmd         *exec.Cmd
	done        chan struct{}
}

func (s *Sandbox) sshDir() string { return filepath.Join(s.Dir, "ssh") }

// StartSSHD starts sshd for the sandbox; Down (or Stop) stops it.
func (s *Sandbox) StartSSHD(ctx context.Context) (*SSHD, error) {
	if _, err := os.Stat(SSHDBin); err != nil {
		return nil, fmt.Errorf("sandbox sshd: %w (install openssh-server)", err)
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("sandbox sshd: %w", err)
	}
	d := &SSHD{Dir: s.sshDir(), User: u.Username, done: make(chan struct{})}
	d.Identity = filepath.Join(d.Dir, "id_ed25519")
	d.KnownHosts = filepath.Join(d.Dir, "known_hosts")
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return nil, err
	}
	// The privilege-separation dir sshd insists on; a container may lack it.
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("sandbox sshd: %w", err)
		}
	}
	hostKey := filepath.Join(d.Dir, "host_ed25519")
	for _, k := range []string{hostKey, d.Identity} {
		if _, err := run(ctx, command{args: []string{"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "settle-sandbox", "-f", k}}); err != nil {
			return nil, fmt.Errorf("sandbox sshd: %w", err)
		}
	}
	pub, err := os.ReadFile(d.Identity + ".pub")
	if err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(d.Dir, "authorized_keys"), pub, 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	d.Port = ports[0]
	d.Addr = "127.0.0.1:" + strconv.Itoa(d.Port)
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(hostPub))
	d.HostKeyLine = fmt.Sprintf("[127.0.0.1]:%d %s %s", d.Port, f[0], f[1])
	if err := writeFile(d.KnownHosts, []byte(d.HostKeyLine+"\n"), 0o600); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`# settle sandbox sshd
ListenAddress 127.0.0.1:%d
HostKey %s
PidFile %s
AuthorizedKeysFile %s
AllowUsers %s
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PermitUserEnvironment no
PrintMotd no
LogLevel VERBOSE
`, d.Port, hostKey, d.pidFile(), filepath.Join(d.Dir, "authorized_keys"), d.User)
	cf := filepath.Join(d.Dir, "sshd_config")
	if err := writeFile(cf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if _, err := run(ctx, command{args: []string{SSHDBin, "-t", "-f", cf}}); err != nil {
		return nil, fmt.Errorf("sandbox sshd: config test: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(d.Dir, "sshd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	d.cmd = exec.Command(SSHDBin, "-D", "-e", "-f", cf)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// Its own group, so a ^C meant for the test does not race Down.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("sandbox sshd: %w", err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	err = poll(ctx, 10*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-d.done:
			return fmt.Errorf("sshd exited; see %s", filepath.Join(d.Dir, "sshd.log"))
		default:
		}
		return banner(d.Addr)
	})
	if err != nil {
		d.Stop()
		return nil, fmt.Errorf("sandbox sshd: %w", err)
	}
	return d, nil
}

func (d *SSHD) pidFile() string { return filepath.Join(d.Dir, "sshd.pid") }

// banner checks that an SSH server answers at addr.
func banner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(l, "SSH-2.0-") {
		return fmt.Errorf("%s answers %q, not SSH", addr, l)
	}
	return nil
}

// Stop ends sshd; sessions it spawned end with their connections.
func (d *SSHD) Stop() error {
	if d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(3 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	return nil
}

func (s *Sandbox) downSSHD(context.Context) error {
	pid, err := readPid(filepath.Join(s.sshDir(), "sshd.pid"))
	if err != nil || !alive(pid) || !cmdlineHas(pid, "sshd") {
		return nil
	}
	if !stop(pid, syscall.SIGTERM, 2*time.Second) && !stop(pid, syscall.SIGKILL, time.Second) {
		return fmt.Errorf("sshd %d survived", pid)
	}
	return nil
}
