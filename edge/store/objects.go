package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/skerry-io/skerry/pkg/wire"
)

// ErrUnsupported: ApplyMessage was given an operation the object table does not handle.
var ErrUnsupported = errors.New("store: unsupported operation")

// objectMeta is the part of an object's content the store reads: the identity the inventory
// reports. Everything else is kept as received.
type objectMeta struct {
	Metadata *struct {
		UID             string `json:"uid"`
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
}

// ApplyMessage commits one downstream object message from the cloud, in one transaction that
// has committed (and reached the disk, see Open) when it returns nil: the hub acknowledges
// the message only then (architecture principle 3).
//
//   - insert, update, patch: the row for the message's resource is replaced by the message
//     content. uid and resourceVersion come from the content's metadata, falling back to
//     header.resourceversion. The cloud sends the newest version of each object, so versions
//     are not compared: resourceVersions are opaque and the last message wins. A message
//     whose content, uid and resourceVersion equal the stored ones (a resend, or a resync
//     of an unchanged object) changes nothing: no revision, no event. A new uid under a
//     stored key (the delete of the old incarnation never arrived) is recorded as Deleted
//     for the old object and Added for the new one, so watchers never see one object turn
//     into another.
//   - delete: the row is removed. A delete whose content names a uid different from the
//     stored one is for an older incarnation of the name (the object was deleted and
//     re-created, and the messages crossed), so it is ignored: deleting the new object would
//     lose it until the next resync. A delete of a key the store does not hold succeeds
//     (deletes are idempotent; the cloud may resend) and produces no event.
//   - anything else fails with ErrUnsupported.
//
// Each real change takes the next store revision, is written to the change log in the same
// transaction and, after the commit, is published to watchers ([DB.Watch]) in revision
// order.
//
// route.resource must be an edge-form resource naming one object. A refused message changes
// nothing.
func (db *DB) ApplyMessage(ctx context.Context, m *wire.Message) error {
	if err := db.usable(); err != nil {
		return err
	}
	if m == nil {
		return errors.New("store: objects: nil message")
	}
	k, err := wire.ParseResource(m.Route.Resource)
	if err != nil {
		return fmt.Errorf("store: objects: %w", err)
	}
	if k.Name == "" {
		return fmt.Errorf("store: objects: resource %q names no object", m.Route.Resource)
	}
	key := k.String()
	uid, rv, err := identity(m)
	if err != nil {
		return fmt.Errorf("store: objects: %s: %w", key, err)
	}

	switch m.Route.Operation {
	case wire.OpInsert, wire.OpUpdate, wire.OpPatch:
		if c := bytes.TrimSpace(m.Content); len(c) == 0 || c[0] != '{' {
			return fmt.Errorf("store: objects: %s: %s content must be a JSON object", key, m.Route.Operation)
		}
		// A copy: events outlive the caller's message.
		obj := Object{Key: k, UID: uid, ResourceVersion: rv, Content: bytes.Clone(m.Content)}
		return db.change(ctx, func(tx *sql.Tx) ([]Event, error) { return db.upsert(ctx, tx, obj, false) })
	case wire.OpDelete:
		return db.change(ctx, func(tx *sql.Tx) ([]Event, error) { return db.remove(ctx, tx, k, uid, m.Header.ID, false) })
	}
	return fmt.Errorf("%w %q for %s", ErrUnsupported, m.Route.Operation, key)
}

// change runs fn in one write transaction and publishes the events it returns once the
// transaction has committed. applyMu spans both, so events reach watchers in revision order.
func (db *DB) change(ctx context.Context, fn func(tx *sql.Tx) ([]Event, error)) error {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	var evs []Event
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		evs, err = fn(tx)
		return err
	})
	if err != nil {
		return err
	}
	db.watchers.publish(evs)
	return nil
}

type rowQuerier interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// stored reads the row for key; ok is false if there is none.
func stored(ctx context.Context, q rowQuerier, k wire.Key) (obj Object, ok bool, err error) {
	obj, _, ok, err = storedRow(ctx, q, k)
	return obj, ok, err
}

// storedRow is stored, also saying whether the row is a local object.
func storedRow(ctx context.Context, q rowQuerier, k wire.Key) (obj Object, local, ok bool, err error) {
	var content []byte
	err = q.QueryRowContext(ctx, `SELECT uid, resource_version, content, revision, local FROM objects WHERE key = ?`, k.String()).
		Scan(&obj.UID, &obj.ResourceVersion, &content, &obj.Revision, &local)
	if errors.Is(err, sql.ErrNoRows) {
		return Object{}, false, false, nil
	}
	if err != nil {
		return Object{}, false, false, err
	}
	obj.Key, obj.Content = k, content
	return obj, local, true, nil
}

// storedKey parses a key read from the database. Only keys that parsed are written, so a
// failure means the file was damaged or edited by hand.
func storedKey(s string) (wire.Key, error) {
	k, err := wire.ParseResource(s)
	if err == nil && k.Name == "" {
		err = fmt.Errorf("%w: names no object", wire.ErrInvalid)
	}
	if err != nil {
		return wire.Key{}, fmt.Errorf("%w: stored key: %w", ErrCorrupt, err)
	}
	return k, nil
}

// upsert writes obj; local says who writes it: the edge (PutLocal) or the cloud
// (ApplyMessage). The cloud never replaces a local object; a local object replaces a cloud
// one.
func (db *DB) upsert(ctx context.Context, tx *sql.Tx, obj Object, local bool) ([]Event, error) {
	k := obj.Key
	old, oldLocal, ok, err := storedRow(ctx, tx, obj.Key)
	if err != nil {
		return nil, err
	}
	if ok && oldLocal && !local {
		db.log.Debug("store: cloud message for a local object ignored", "key", k.String())
		return nil, nil
	}
	if ok && oldLocal != local {
		rev, err := db.record(ctx, tx, Deleted, old)
		if err != nil {
			return nil, err
		}
		old.Revision = rev
		evs := []Event{{Type: Deleted, Revision: rev, Object: old}}
		more, err := db.write1(ctx, tx, obj, Added, local)
		return append(evs, more...), err
	}
	var evs []Event
	typ := Added
	switch {
	case ok && old.UID == obj.UID && old.ResourceVersion == obj.ResourceVersion && bytes.Equal(old.Content, obj.Content):
		return nil, nil
	case ok && old.UID != obj.UID && old.UID != "" && obj.UID != "":
		rev, err := db.record(ctx, tx, Deleted, old)
		if err != nil {
			return nil, err
		}
		old.Revision = rev
		evs = append(evs, Event{Type: Deleted, Revision: rev, Object: old})
	case ok:
		typ = Modified
	}
	more, err := db.write1(ctx, tx, obj, typ, local)
	return append(evs, more...), err
}

// write1 records one change and writes the row.
func (db *DB) write1(ctx context.Context, tx *sql.Tx, obj Object, typ EventType, local bool) ([]Event, error) {
	k := obj.Key
	rev, err := db.record(ctx, tx, typ, obj)
	if err != nil {
		return nil, err
	}
	obj.Revision = rev
	_, err = tx.ExecContext(ctx, `INSERT INTO objects (key, type, namespace, uid, resource_version, content, revision, local)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET uid = excluded.uid, resource_version = excluded.resource_version,
			content = excluded.content, revision = excluded.revision, local = excluded.local`,
		k.String(), string(k.Type), k.Namespace, obj.UID, obj.ResourceVersion, []byte(obj.Content), rev, local)
	if err != nil {
		return nil, err
	}
	return []Event{{Type: typ, Revision: rev, Object: obj}}, nil
}

// remove deletes the row for k if the same side (local or cloud) wrote it.
func (db *DB) remove(ctx context.Context, tx *sql.Tx, k wire.Key, uid, msgID string, local bool) ([]Event, error) {
	old, oldLocal, ok, err := storedRow(ctx, tx, k)
	if err != nil || !ok {
		return nil, err
	}
	if oldLocal != local {
		db.log.Debug("store: delete of an object the other side wrote ignored", "key", k.String(), "local", local)
		return nil, nil
	}
	if uid != "" && old.UID != uid {
		db.log.Info("store: ignoring delete for an older incarnation of the object",
			"key", k.String(), "deleteUID", uid, "storedUID", old.UID, "msgID", msgID)
		return nil, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM objects WHERE key = ?`, k.String()); err != nil {
		return nil, err
	}
	rev, err := db.record(ctx, tx, Deleted, old)
	if err != nil {
		return nil, err
	}
	old.Revision = rev
	return []Event{{Type: Deleted, Revision: rev, Object: old}}, nil
}

// record takes the next revision for a change to obj and appends the change to the log,
// inside the caller's transaction. It trims the log in batches of changeLog/16 (at least
// 1), so most writes pay only for one insert and the log stays within changeLog plus one
// batch.
func (db *DB) record(ctx context.Context, tx *sql.Tx, typ EventType, obj Object) (int64, error) {
	var rev, compacted int64
	if err := tx.QueryRowContext(ctx, `UPDATE revision SET current = current + 1 WHERE id = 0 RETURNING current, compacted`).
		Scan(&rev, &compacted); err != nil {
		return 0, fmt.Errorf("revision: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO changes (revision, type, key, uid, resource_version, content) VALUES (?, ?, ?, ?, ?, ?)`,
		rev, string(typ), obj.Key.String(), obj.UID, obj.ResourceVersion, []byte(obj.Content)); err != nil {
		return 0, fmt.Errorf("change log: %w", err)
	}
	if rev-compacted <= db.changeLog+max(db.changeLog/16, 1) {
		return rev, nil
	}
	keepAfter := rev - db.changeLog
	if _, err := tx.ExecContext(ctx, `DELETE FROM changes WHERE revision <= ?`, keepAfter); err != nil {
		return 0, fmt.Errorf("trimming change log: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE revision SET compacted = ? WHERE id = 0`, keepAfter); err != nil {
		return 0, fmt.Errorf("trimming change log: %w", err)
	}
	db.log.Debug("store: trimmed change log", "compacted", keepAfter, "revision", rev)
	return rev, nil
}

// identity reads uid and resourceVersion from the content's metadata, with
// header.resourceversion as the fallback for the latter. Content that is not a JSON object
// (a delete may carry null or a name) has no metadata.
func identity(m *wire.Message) (uid, rv string, err error) {
	if c := bytes.TrimSpace(m.Content); len(c) > 0 && c[0] == '{' {
		var om objectMeta
		if err := json.Unmarshal(c, &om); err != nil {
			return "", "", fmt.Errorf("content metadata: %w", err)
		}
		if om.Metadata != nil {
			uid, rv = om.Metadata.UID, om.Metadata.ResourceVersion
		}
	}
	if rv == "" {
		rv = m.Header.ResourceVersion
	}
	// The inventory carries these back to the cloud, which refuses longer ones.
	if len(uid) > wire.MaxIDLength || len(rv) > wire.MaxIDLength {
		return "", "", fmt.Errorf("uid or resourceVersion longer than %d bytes", wire.MaxIDLength)
	}
	return uid, rv, nil
}

// Inventory lists every object the cloud sent (local objects are the edge's own), for the resync handshake on connect. It
// reads from the read pool, so it sees the last committed state.
func (db *DB) Inventory(ctx context.Context) (wire.Inventory, error) {
	if err := db.usable(); err != nil {
		return wire.Inventory{}, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT key, uid, resource_version FROM objects WHERE local = 0 ORDER BY key`)
	if err != nil {
		return wire.Inventory{}, fmt.Errorf("store: inventory: %w", mapErr(err))
	}
	defer rows.Close()
	inv := wire.Inventory{Items: []wire.InventoryItem{}}
	for rows.Next() {
		var it wire.InventoryItem
		if err := rows.Scan(&it.Key, &it.UID, &it.ResourceVersion); err != nil {
			return wire.Inventory{}, fmt.Errorf("store: inventory: %w", mapErr(err))
		}
		inv.Items = append(inv.Items, it)
	}
	if err := rows.Err(); err != nil {
		return wire.Inventory{}, fmt.Errorf("store: inventory: %w", mapErr(err))
	}
	return inv, nil
}

// Object is one stored object.
type Object struct {
	// Key names the object; Key.String() is its edge-form resource ("default/pod/web-1",
	// "null/node/edge-1"). Namespace is "" for cluster-scoped objects.
	Key             wire.Key
	UID             string
	ResourceVersion string // the cloud's, opaque
	// Content is the message content as received. In events it is shared by every
	// watcher: read it, do not modify it.
	Content json.RawMessage
	// Revision is the store revision of the object's last change; in a Deleted event, the
	// revision of the deletion.
	Revision int64
}

// Get returns the stored object for k; ok is false if there is none.
func (db *DB) Get(ctx context.Context, k wire.Key) (obj Object, ok bool, err error) {
	if err := db.usable(); err != nil {
		return Object{}, false, err
	}
	if err := k.Validate(); err != nil {
		return Object{}, false, fmt.Errorf("store: get: %w", err)
	}
	if k.Name == "" {
		return Object{}, false, fmt.Errorf("store: get %s: %w: the key names no object", k, wire.ErrInvalid)
	}
	obj, ok, err = stored(ctx, db.read, k)
	if err != nil {
		return Object{}, false, fmt.Errorf("store: get %s: %w", k, mapErr(err))
	}
	return obj, ok, nil
}

// List returns every object of type typ, in namespace (all namespaces if ""), sorted by
// key, and the store revision of that snapshot: watching from it ([DB.Watch]) misses no
// change and repeats none. Both come from one read transaction.
func (db *DB) List(ctx context.Context, typ wire.ResourceType, namespace string) (objs []Object, revision int64, err error) {
	if err := db.usable(); err != nil {
		return nil, 0, err
	}
	if err := (wire.Key{Namespace: namespace, Type: typ}).Validate(); err != nil {
		return nil, 0, fmt.Errorf("store: list: %w", err)
	}
	objs, revision, err = db.list(ctx, typ, namespace)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list %s in %q: %w", typ, namespace, mapErr(err))
	}
	return objs, revision, nil
}

// List's queries; both read through objects_type_namespace (TestListUsesIndex).
const (
	listQuery            = `SELECT key, uid, resource_version, content, revision FROM objects WHERE type = ? ORDER BY key`
	listInNamespaceQuery = `SELECT key, uid, resource_version, content, revision FROM objects WHERE type = ? AND namespace = ? ORDER BY key`
)

func (db *DB) list(ctx context.Context, typ wire.ResourceType, namespace string) ([]Object, int64, error) {
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to commit
	var rev int64
	if err := tx.QueryRowContext(ctx, `SELECT current FROM revision`).Scan(&rev); err != nil {
		return nil, 0, err
	}
	var rows *sql.Rows
	if namespace == "" {
		rows, err = tx.QueryContext(ctx, listQuery, string(typ))
	} else {
		rows, err = tx.QueryContext(ctx, listInNamespaceQuery, string(typ), namespace)
	}
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	objs := []Object{}
	for rows.Next() {
		var o Object
		var key string
		var content []byte
		if err := rows.Scan(&key, &o.UID, &o.ResourceVersion, &content, &o.Revision); err != nil {
			return nil, 0, err
		}
		if o.Key, err = storedKey(key); err != nil {
			return nil, 0, err
		}
		o.Content = content
		objs = append(objs, o)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	return objs, rev, nil
}

// writeTx runs fn in one write transaction and commits it; any error rolls everything back.
func (db *DB) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: objects: %w", mapErr(err))
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := fn(tx); err != nil {
		return fmt.Errorf("store: objects: %w", mapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: objects: %w", mapErr(err))
	}
	return nil
}

// PutLocal stores an object the edge made itself (a static pod) under k. Local objects are
// listed and watched like the cloud's, but the inventory leaves them out and cloud messages
// for their key are ignored, so a resync can neither delete nor replace them. A local object
// replaces a cloud object of the same key (Deleted, then Added). content must be a JSON
// object; its metadata.uid and resourceVersion are the object's identity.
func (db *DB) PutLocal(ctx context.Context, k wire.Key, content []byte) error {
	if err := db.usable(); err != nil {
		return err
	}
	if err := k.Validate(); err != nil || k.Name == "" {
		return fmt.Errorf("store: put local %s: %w: a key naming one object is required", k, wire.ErrInvalid)
	}
	if c := bytes.TrimSpace(content); len(c) == 0 || c[0] != '{' {
		return fmt.Errorf("store: put local %s: content must be a JSON object", k)
	}
	uid, rv, err := identity(&wire.Message{Content: content})
	if err != nil {
		return fmt.Errorf("store: put local %s: %w", k, err)
	}
	obj := Object{Key: k, UID: uid, ResourceVersion: rv, Content: bytes.Clone(content)}
	return db.change(ctx, func(tx *sql.Tx) ([]Event, error) { return db.upsert(ctx, tx, obj, true) })
}

// DeleteLocal removes the local object k; a missing key or a cloud object there is left
// alone.
func (db *DB) DeleteLocal(ctx context.Context, k wire.Key) error {
	if err := db.usable(); err != nil {
		return err
	}
	if err := k.Validate(); err != nil || k.Name == "" {
		return fmt.Errorf("store: delete local %s: %w: a key naming one object is required", k, wire.ErrInvalid)
	}
	return db.change(ctx, func(tx *sql.Tx) ([]Event, error) { return db.remove(ctx, tx, k, "", "", true) })
}

// ListLocal returns the local objects of type typ, sorted by key.
func (db *DB) ListLocal(ctx context.Context, typ wire.ResourceType) ([]Object, error) {
	if err := db.usable(); err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx,
		`SELECT key, uid, resource_version, content, revision FROM objects WHERE type = ? AND local = 1 ORDER BY key`, string(typ))
	if err != nil {
		return nil, fmt.Errorf("store: list local %s: %w", typ, mapErr(err))
	}
	defer rows.Close()
	var objs []Object
	for rows.Next() {
		var o Object
		var key string
		var content []byte
		if err := rows.Scan(&key, &o.UID, &o.ResourceVersion, &content, &o.Revision); err != nil {
			return nil, fmt.Errorf("store: list local %s: %w", typ, mapErr(err))
		}
		if o.Key, err = storedKey(key); err != nil {
			return nil, err
		}
		o.Content = content
		objs = append(objs, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list local %s: %w", typ, mapErr(err))
	}
	return objs, nil
}
