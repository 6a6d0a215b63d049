package account

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/store"
	"github.com/deputy-auth/deputy/oauth"
)

// MaxUsernameBytes bounds the username of a stored account.
const MaxUsernameBytes = 256

// ErrEmptyPassword refuses an account without a password.
var ErrEmptyPassword = errors.New("account: the password is empty")

// NewStoredUser checks a new account for the store (`deputy users add`) against
// the configuration it will be served with, and hashes its password with
// [HashPassword]. It refuses an empty password; a username that is empty, longer
// than MaxUsernameBytes, not UTF-8, or holds white space or control characters; a
// username that is a configured user's (which would shadow it) or a client id (a
// token's subject would not say which of the two it is); and whatever else
// configuration validation refuses in users[] (claims deputy sets itself, like sub;
// a role that is not one of [config.KnownRoles], or given twice). Whether the
// username is already stored is the store's to say (ErrConflict).
func NewStoredUser(cfg *config.Config, username, password string, claims map[string]string, roles []string, now time.Time) (store.User, error) {
	if err := checkNewUser(cfg, username, password, claims, roles); err != nil {
		return store.User{}, err
	}
	h, err := HashPassword(password)
	if err != nil {
		return store.User{}, err
	}
	return store.User{Username: username, PasswordHash: h, Claims: claims, Roles: roleSet(roles), CreatedAt: now.UTC()}, nil
}

func checkNewUser(cfg *config.Config, username, password string, claims map[string]string, roles []string) error {
	switch {
	case username == "":
		return errors.New("account: the username is empty")
	case len(username) > MaxUsernameBytes:
		return fmt.Errorf("account: the username is longer than %d bytes", MaxUsernameBytes)
	case !utf8.ValidString(username):
		return errors.New("account: the username is not UTF-8")
	case strings.ContainsFunc(username, func(r rune) bool { return unicode.IsSpace(r) || oauth.UnsafeRune(r) }):
		return fmt.Errorf("account: the username %q holds white space or control characters", username)
	case password == "":
		return ErrEmptyPassword
	case cfg.Client(username) != nil:
		return fmt.Errorf("account: %q is a client id; a token's subject would not say which of the two it is", username)
	}
	for _, u := range cfg.Users {
		if u.Username == username {
			return fmt.Errorf("account: %q is a user of the configuration file", username)
		}
	}
	// The rules of users[] in configuration, from the one table that holds them.
	probe := *cfg
	probe.Users = []config.User{{Username: username, Password: password, Claims: claims, Roles: roles}}
	var cerr *config.Error
	if err := probe.Validate(); errors.As(err, &cerr) {
		var msgs []string
		for _, p := range cerr.Problems {
			if rest, ok := strings.CutPrefix(p.Path, "users[0]."); ok {
				msgs = append(msgs, rest+": "+strings.ReplaceAll(p.Message, "users[0].", ""))
			}
		}
		if len(msgs) > 0 {
			return fmt.Errorf("account: %s", strings.Join(msgs, "; "))
		}
	}
	return nil
}
