package reconcilers

import (
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// Secrets is the process-wide set of values that must never be printed:
// DSN passwords, the Redis password, whatever an operator names. Anything
// that leaves settle as text (errors, logs, status, reports) passes Redact.
var secrets struct {
	sync.RWMutex
	vals []string
}

// AddSecret registers a value to be masked everywhere. Short values are
// ignored: masking "a" would shred every message.
func AddSecret(v string) {
	if len(v) < 4 {
		return
	}
	secrets.Lock()
	defer secrets.Unlock()
	for _, s := range secrets.vals {
		if s == v {
			return
		}
	}
	secrets.vals = append(secrets.vals, v)
}

var secretPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]*@`),                                                 // URL user info
	regexp.MustCompile(`(?i)((?:password|passwd|pwd|secret|token|api_key)\s*[=:]\s*)[^\s&,;"']+`), // key=value
	regexp.MustCompile(`(?i)("(?:[a-z_]*password|[a-z_]*secret|[a-z_]*token)"\s*:\s*")[^"]*`),     // JSON
}

// Redact masks registered secrets and anything shaped like a credential.
func Redact(s string) string {
	secrets.RLock()
	for _, v := range secrets.vals {
		s = strings.ReplaceAll(s, v, "***")
	}
	secrets.RUnlock()
	for _, re := range secretPatterns {
		s = re.ReplaceAllString(s, "${1}***")
	}
	return s
}

// AddSecretDSN registers the password of a PostgreSQL DSN (URL or
// key=value form) and the DSN itself.
func AddSecretDSN(dsn string) {
	if dsn == "" {
		return
	}
	AddSecret(dsn)
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			AddSecret(pw)
		}
	}
	for _, f := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(f, "password="); ok {
			AddSecret(strings.Trim(v, "'"))
		}
	}
}
