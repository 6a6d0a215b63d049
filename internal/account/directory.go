package account

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"time"

	"github.com/deputy-auth/deputy/internal/config"
	"github.com/deputy-auth/deputy/internal/store"
)

// Errors of [Directory.Authenticate] and [Directory.Lookup]. A throttled attempt
// returns a [*ThrottledError], which matches [ErrThrottled].
var (
	// ErrInvalidCredentials: no such account, or the wrong password. The two are
	// deliberately the same error, and cost the same time.
	ErrInvalidCredentials = errors.New("account: invalid username or password")
	// ErrDisabled: the password is right but the account is disabled. It is only
	// returned to whoever knows the password; a wrong one is ErrInvalidCredentials.
	ErrDisabled = errors.New("account: account disabled")
	// ErrNotFound: Lookup found no enabled account of that name.
	ErrNotFound = errors.New("account: no such account")
)

// Account is a local account as the rest of deputy sees it: its username is the
// subject of the tokens issued to it (design §6).
type Account struct {
	Username string
	Claims   map[string]string // identity claims (email, name, …); the caller's copy
	Roles    []string          // sorted, without repeats; nil when none; the caller's copy
}

// Options tunes a [Directory]. The zero value is the default.
type Options struct {
	// MaxConcurrentHashes bounds how many argon2id computations run at once (each
	// takes HashMemoryKiB of memory). Default: GOMAXPROCS.
	MaxConcurrentHashes int
	// Throttle configures login throttling.
	Throttle Throttle
}

// Directory is the set of local accounts: those of the configuration file and those
// in the store. A configured account shadows a stored one of the same username.
// Safe for concurrent use.
type Directory struct {
	configured map[string]configured
	store      store.Users // nil: configured accounts only
	slow       chan struct{}
	dummy      *phc // verified for unknown usernames, so they cost what known ones do
	accounts   *limiter
	addresses  *limiter
}

type configured struct {
	hash   *phc
	claims map[string]string
	roles  []string // sorted, without repeats; nil when none
}

// NewDirectory builds the directory. cfg is the users[] of the configuration: a
// password_hash is parsed, a clear password (development only) is hashed now. st
// holds the other accounts; it may be nil.
func NewDirectory(cfg []config.User, st store.Users, opts Options) (*Directory, error) {
	return newDirectory(cfg, st, opts, defaultParams())
}

// newDirectory is NewDirectory with the argon2id cost of clear passwords and of the
// dummy hash; tests make it cheap.
func newDirectory(cfg []config.User, st store.Users, opts Options, p params) (*Directory, error) {
	th, err := opts.Throttle.withDefaults()
	if err != nil {
		return nil, err
	}
	n := opts.MaxConcurrentHashes
	if n < 0 {
		return nil, errors.New("account: MaxConcurrentHashes is negative")
	}
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	d := &Directory{
		configured: make(map[string]configured, len(cfg)),
		store:      st,
		slow:       make(chan struct{}, n),
		accounts:   newLimiter(th.AccountFailures, th),
		addresses:  newLimiter(th.AddressFailures, th),
	}
	// The dummy never matches (its key is random), and costs what a hash made by
	// HashPassword costs.
	d.dummy = &phc{params: p, salt: make([]byte, SaltBytes), key: make([]byte, KeyBytes)}
	if _, err := rand.Read(d.dummy.salt); err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	if _, err := rand.Read(d.dummy.key); err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	if err := d.configure(cfg); err != nil {
		return nil, err
	}
	return d, nil
}

// Reconfigure returns a directory of the configured accounts cfg (a reload of the
// configuration file) over d's store, sharing d's throttling of failed sign-ins
// (per account and per address) and its bound on concurrent hashes: a reload
// forgives no failure. d is unchanged.
func (d *Directory) Reconfigure(cfg []config.User) (*Directory, error) {
	n := &Directory{configured: make(map[string]configured, len(cfg)), store: d.store, slow: d.slow,
		dummy: d.dummy, accounts: d.accounts, addresses: d.addresses}
	if err := n.configure(cfg); err != nil {
		return nil, err
	}
	return n, nil
}

// configure adds the configured accounts cfg: a password_hash is parsed, a clear
// password (development only) is hashed with the dummy's cost.
func (d *Directory) configure(cfg []config.User) error {
	p := d.dummy.params
	var err error
	for i, u := range cfg {
		if _, dup := d.configured[u.Username]; dup {
			return fmt.Errorf("users[%d].username: %q is configured twice", i, u.Username)
		}
		s := u.PasswordHash
		if s == "" && u.Password != "" {
			if s, err = hashWith(u.Password, p); err != nil {
				return err
			}
		}
		h, err := parsePHC(s)
		if err != nil {
			return fmt.Errorf("users[%d].password_hash: %w", i, err)
		}
		d.configured[u.Username] = configured{hash: h, claims: maps.Clone(u.Claims), roles: roleSet(u.Roles)}
	}
	return nil
}

// Authenticate checks username and password. remoteAddr is the client's address
// ("host:port" or a bare IP; "" exempts the attempt from the per-address limit) and
// now the time of the attempt, for throttling (see [Throttle]).
//
// It returns the account, or ErrInvalidCredentials (unknown user or wrong password:
// the same error and the same cost, one argon2id verification), ErrDisabled (right
// password, disabled account), a [*ThrottledError] (locked; nothing was hashed), the
// context's error if it ends while the attempt waits its turn to hash, or a store
// error. Only ErrInvalidCredentials and ErrDisabled count as failures.
func (d *Directory) Authenticate(ctx context.Context, username, password, remoteAddr string, now time.Time) (Account, error) {
	ak := accountKey(username)
	if wait, ok := d.accounts.begin(ak, now); !ok {
		return Account{}, &ThrottledError{RetryAfter: wait, Limit: "account"}
	}
	nk, hasAddr := addressKey(remoteAddr)
	if hasAddr {
		if wait, ok := d.addresses.begin(nk, now); !ok {
			d.accounts.cancel(ak)
			return Account{}, &ThrottledError{RetryAfter: wait, Limit: "address"}
		}
	}
	undo := func() {
		d.accounts.cancel(ak)
		if hasAddr {
			d.addresses.cancel(nk)
		}
	}
	acct, hash, disabled, err := d.find(ctx, username)
	found := err == nil
	switch {
	case errors.Is(err, ErrNotFound):
		hash = d.dummy
	case err != nil:
		undo()
		return Account{}, err
	}
	match, err := d.verify(ctx, hash, password)
	if err != nil {
		undo()
		return Account{}, err
	}
	switch {
	case !found || !match:
		return Account{}, ErrInvalidCredentials
	case disabled:
		return Account{}, ErrDisabled
	}
	d.accounts.reset(ak)
	if hasAddr {
		d.addresses.cancel(nk)
	}
	return acct, nil
}

// Lookup returns the enabled account named username (for userinfo), or ErrNotFound
// if there is none or it is disabled, or a store error.
func (d *Directory) Lookup(ctx context.Context, username string) (Account, error) {
	acct, _, disabled, err := d.find(ctx, username)
	if err != nil {
		return Account{}, err
	}
	if disabled {
		return Account{}, ErrNotFound
	}
	return acct, nil
}

// Usable reports whether tokens may still be issued to the local account named
// username: nil when it exists and is enabled, ErrDisabled or ErrNotFound (deleted)
// otherwise, or a store error.
func (d *Directory) Usable(ctx context.Context, username string) error {
	_, _, disabled, err := d.find(ctx, username)
	switch {
	case err != nil:
		return err
	case disabled:
		return ErrDisabled
	}
	return nil
}

// find returns the account named username, configured first, then stored; or
// ErrNotFound.
func (d *Directory) find(ctx context.Context, username string) (Account, *phc, bool, error) {
	if c, ok := d.configured[username]; ok {
		return Account{Username: username, Claims: maps.Clone(c.claims), Roles: slices.Clone(c.roles)}, c.hash, false, nil
	}
	if d.store == nil {
		return Account{}, nil, false, ErrNotFound
	}
	u, err := d.store.UserByName(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return Account{}, nil, false, ErrNotFound
	}
	if err != nil {
		return Account{}, nil, false, fmt.Errorf("account: read %q: %w", username, err)
	}
	h, err := parsePHC(u.PasswordHash)
	if err != nil {
		return Account{}, nil, false, fmt.Errorf("account: stored account %q: %w", username, err)
	}
	return Account{Username: u.Username, Claims: maps.Clone(u.Claims), Roles: roleSet(u.Roles)}, h, u.Disabled, nil
}

// verify runs one argon2id check once a slot is free, or gives up when ctx ends;
// a ctx that has already ended never hashes.
func (d *Directory) verify(ctx context.Context, h *phc, password string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	select {
	case d.slow <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-d.slow }()
	return h.matches(password), nil
}
