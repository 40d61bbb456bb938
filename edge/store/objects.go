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
//     are not compared: resourceVersions are opaque and the last message wins.
//   - delete: the row is removed. A delete whose content names a uid different from the
//     stored one is for an older incarnation of the name (the object was deleted and
//     re-created, and the messages crossed), so it is ignored: deleting the new object would
//     lose it until the next resync. A delete of a key the store does not hold succeeds
//     (deletes are idempotent; the cloud may resend).
//   - anything else fails with ErrUnsupported.
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
		return db.writeTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO objects (key, uid, resource_version, content) VALUES (?, ?, ?, ?)
				ON CONFLICT (key) DO UPDATE SET uid = excluded.uid,
					resource_version = excluded.resource_version, content = excluded.content`,
				key, uid, rv, []byte(m.Content))
			return err
		})
	case wire.OpDelete:
		return db.writeTx(ctx, func(tx *sql.Tx) error {
			if uid == "" {
				_, err := tx.ExecContext(ctx, `DELETE FROM objects WHERE key = ?`, key)
				return err
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM objects WHERE key = ? AND uid = ?`, key, uid)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err == nil && n == 0 {
				var stored string
				switch err := tx.QueryRowContext(ctx, `SELECT uid FROM objects WHERE key = ?`, key).Scan(&stored); {
				case err == nil:
					db.log.Info("store: ignoring delete for an older incarnation of the object",
						"key", key, "deleteUID", uid, "storedUID", stored, "msgID", m.Header.ID)
				case !errors.Is(err, sql.ErrNoRows):
					return err
				}
			}
			return nil
		})
	}
	return fmt.Errorf("%w %q for %s", ErrUnsupported, m.Route.Operation, key)
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

// Inventory lists every object the store holds, for the resync handshake on connect. It
// reads from the read pool, so it sees the last committed state.
func (db *DB) Inventory(ctx context.Context) (wire.Inventory, error) {
	if err := db.usable(); err != nil {
		return wire.Inventory{}, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT key, uid, resource_version FROM objects ORDER BY key`)
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
	Key             string
	UID             string
	ResourceVersion string
	Content         json.RawMessage
}

// Object returns the stored object for an edge-form key; ok is false if there is none.
func (db *DB) Object(ctx context.Context, key string) (obj Object, ok bool, err error) {
	if err := db.usable(); err != nil {
		return Object{}, false, err
	}
	var content []byte
	err = db.read.QueryRowContext(ctx, `SELECT key, uid, resource_version, content FROM objects WHERE key = ?`, key).
		Scan(&obj.Key, &obj.UID, &obj.ResourceVersion, &content)
	if errors.Is(err, sql.ErrNoRows) {
		return Object{}, false, nil
	}
	if err != nil {
		return Object{}, false, fmt.Errorf("store: object %s: %w", key, mapErr(err))
	}
	obj.Content = content
	return obj, true, nil
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
