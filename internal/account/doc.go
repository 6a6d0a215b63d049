// Package account owns deputy's local accounts (design §3 `users`): the people who
// sign in with a username and a password kept by deputy itself, as opposed to those
// who sign in through an upstream identity provider.
//
// It owns three things:
//
//   - Password hashing. [HashPassword] makes an argon2id hash in the PHC string
//     format "$argon2id$v=19$m=65536,t=3,p=2$<salt>$<key>" (salt and key in base64
//     without padding), with a random 16-byte salt and a 32-byte key. The cost is
//     m=64 MiB, t=3 passes, p=2 lanes: RFC 9106 §4's second recommended option
//     (64 MiB, 3 passes) with two lanes instead of four, so one hash keeps two cores
//     busy rather than four. [VerifyPassword] checks any argon2id hash in that
//     format, whatever its parameters within sane bounds, in constant time.
//   - The [Directory]: the accounts of the configuration file (users[]; a clear
//     `password` is hashed once when the directory is built — development only)
//     together with the accounts stored in the database (`deputy users add`). When a
//     username is in both, the configuration wins and the stored account is never
//     consulted. [Directory.Authenticate] checks a password; [Directory.Lookup]
//     reads an account for userinfo; [Directory.Exists] tells an upstream sign-in
//     whether its subject is a local account's name (enabled or not);
//     [Directory.Roles] says which roles an enabled account holds (users[].roles
//     or `deputy users roles`; [RoleAuditor] opens the audit explorer). At most
//     GOMAXPROCS argon2id computations run at once per directory, so a flood of
//     logins queues instead of exhausting memory.
//   - Login throttling, in memory and per node: see [Throttle] for the rules and
//     their defaults. A limit shared by the nodes of a cluster is future work (it
//     needs the database); until then each node enforces its own.
//
// The argon2id parser here duplicates the one in internal/client (client secrets
// hashed the same way); the two accept the same format.
//
// Imports: the standard library, golang.org/x/crypto/argon2, and deputy's config
// and store interfaces. Never net/http, database/sql or a store implementation:
// imports_test.go enforces it.
package account
