package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/skerry-io/skerry/pkg/wire"
)

// TwinValue is one twin value and its metadata.
type TwinValue struct {
	Value    string            `json:"value"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// TwinVersion counts the changes each side made to one half of a twin.
type TwinVersion struct {
	Cloud, Edge int64
}

// TwinProperty is the twin of one device property. A nil value is unset.
type TwinProperty struct {
	Name     string
	Type     string // the model's property type ("INT", ...), "" while the model is unknown
	Optional bool
	// Expected is the desired value in force; CloudDesired is the Device's desired value
	// as last seen, kept to notice when the cloud changes it.
	Expected, CloudDesired *TwinValue
	// Actual is the value last read from the device; ObservedDesired the desired value the
	// device said it applied.
	Actual, ObservedDesired        *TwinValue
	ExpectedVersion, ActualVersion TwinVersion
}

// DeviceTwin is everything the store keeps of one device's twin.
type DeviceTwin struct {
	Device         wire.Key // type wire.TypeDevice
	UID            string   // the Device's uid when the twin was made
	State          string
	LastOnlineTime string
	// Dirty is 0 when the device's status went upstream after its last change, else the
	// generation of the newest change not yet sent ([DB.ClearTwinDirty]).
	Dirty      int64
	Properties []TwinProperty // sorted by Name
}

// Twins returns every stored device twin, sorted by device key.
func (db *DB) Twins(ctx context.Context) ([]DeviceTwin, error) {
	if err := db.usable(); err != nil {
		return nil, err
	}
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: twins: %w", mapErr(err))
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	out, err := readTwins(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("store: twins: %w", mapErr(err))
	}
	return out, nil
}

func readTwins(ctx context.Context, tx *sql.Tx) ([]DeviceTwin, error) {
	rows, err := tx.QueryContext(ctx, `SELECT device, uid, state, last_online, dirty FROM twin_devices ORDER BY device`)
	if err != nil {
		return nil, err
	}
	var out []DeviceTwin
	index := map[string]int{}
	for rows.Next() {
		var key string
		var d DeviceTwin
		if err := rows.Scan(&key, &d.UID, &d.State, &d.LastOnlineTime, &d.Dirty); err != nil {
			_ = rows.Close()
			return nil, err
		}
		if d.Device, err = storedKey(key); err != nil {
			_ = rows.Close()
			return nil, err
		}
		index[key] = len(out)
		out = append(out, d)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}

	rows, err = tx.QueryContext(ctx, `SELECT device, property, type, optional, expected, actual, observed_desired, cloud_desired,
		expected_version_cloud, expected_version_edge, actual_version_cloud, actual_version_edge
		FROM twins ORDER BY device, property`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var p TwinProperty
		var exp, act, obs, cd []byte
		if err := rows.Scan(&key, &p.Name, &p.Type, &p.Optional, &exp, &act, &obs, &cd,
			&p.ExpectedVersion.Cloud, &p.ExpectedVersion.Edge, &p.ActualVersion.Cloud, &p.ActualVersion.Edge); err != nil {
			return nil, err
		}
		i, ok := index[key]
		if !ok { // the foreign key makes this impossible unless the file was edited
			return nil, fmt.Errorf("%w: twin row for unknown device %q", ErrCorrupt, key)
		}
		for _, v := range []struct {
			raw []byte
			dst **TwinValue
		}{{exp, &p.Expected}, {act, &p.Actual}, {obs, &p.ObservedDesired}, {cd, &p.CloudDesired}} {
			if v.raw == nil {
				continue
			}
			tv := new(TwinValue)
			if err := json.Unmarshal(v.raw, tv); err != nil {
				return nil, fmt.Errorf("%w: twin %s/%s: %w", ErrCorrupt, key, p.Name, err)
			}
			*v.dst = tv
		}
		out[i].Properties = append(out[i].Properties, p)
	}
	return out, rows.Err()
}

// PutTwin replaces the stored twin of t.Device (device row and every property row) in one
// transaction, so a crash leaves either the old twin or the new one.
func (db *DB) PutTwin(ctx context.Context, t DeviceTwin) error {
	if err := db.usable(); err != nil {
		return err
	}
	if err := checkDeviceKey(t.Device); err != nil {
		return fmt.Errorf("store: put twin: %w", err)
	}
	key := t.Device.String()
	return db.twinTx(ctx, "put twin "+key, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO twin_devices (device, uid, state, last_online, dirty) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (device) DO UPDATE SET uid = excluded.uid, state = excluded.state,
				last_online = excluded.last_online, dirty = excluded.dirty`,
			key, t.UID, t.State, t.LastOnlineTime, t.Dirty); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM twins WHERE device = ?`, key); err != nil {
			return err
		}
		props := slices.Clone(t.Properties)
		slices.SortFunc(props, func(a, b TwinProperty) int { return cmp.Compare(a.Name, b.Name) })
		for i, p := range props {
			if p.Name == "" {
				return errors.New("property with an empty name")
			}
			if i > 0 && props[i-1].Name == p.Name {
				return fmt.Errorf("property %q twice", p.Name)
			}
			vals := make([]any, 4)
			for j, v := range []*TwinValue{p.Expected, p.Actual, p.ObservedDesired, p.CloudDesired} {
				if v == nil {
					continue
				}
				b, err := json.Marshal(v)
				if err != nil {
					return err
				}
				vals[j] = b
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO twins (device, property, type, optional, expected, actual, observed_desired,
				cloud_desired, expected_version_cloud, expected_version_edge, actual_version_cloud, actual_version_edge)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				key, p.Name, p.Type, p.Optional, vals[0], vals[1], vals[2], vals[3],
				p.ExpectedVersion.Cloud, p.ExpectedVersion.Edge, p.ActualVersion.Cloud, p.ActualVersion.Edge); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteTwin removes the twin of device; a missing one is not an error.
func (db *DB) DeleteTwin(ctx context.Context, device wire.Key) error {
	if err := db.usable(); err != nil {
		return err
	}
	if err := checkDeviceKey(device); err != nil {
		return fmt.Errorf("store: delete twin: %w", err)
	}
	return db.twinTx(ctx, "delete twin "+device.String(), func(tx *sql.Tx) error {
		// twins rows go with it (ON DELETE CASCADE).
		_, err := tx.ExecContext(ctx, `DELETE FROM twin_devices WHERE device = ?`, device.String())
		return err
	})
}

// ClearTwinDirty marks device's status as sent, unless a change newer than generation gen
// came in meanwhile; it reports whether it cleared the flag.
func (db *DB) ClearTwinDirty(ctx context.Context, device wire.Key, gen int64) (bool, error) {
	if err := db.usable(); err != nil {
		return false, err
	}
	var n int64
	err := db.twinTx(ctx, "clear twin dirty "+device.String(), func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE twin_devices SET dirty = 0 WHERE device = ? AND dirty = ?`, device.String(), gen)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n > 0, err
}

func (db *DB) twinTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, mapErr(err))
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := fn(tx); err != nil {
		return fmt.Errorf("store: %s: %w", what, mapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: %w", what, mapErr(err))
	}
	return nil
}

func checkDeviceKey(k wire.Key) error {
	if k.Type != wire.TypeDevice || k.Name == "" || k.Namespace == "" {
		return fmt.Errorf("%w: %q is not a device key", wire.ErrInvalid, k.String())
	}
	return k.Validate()
}
