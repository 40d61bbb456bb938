package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/cloud/edgecontroller/authz"
	"github.com/skerry-io/skerry/cloud/hub"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Limits on a DeviceStatus message, beyond its size (authz.MaxDeviceStatusContent).
const (
	maxTwins          = 1024
	maxPropertyName   = 253
	maxStateLength    = 63
	maxTimestampField = 64
)

// Limits on an MQTT upload.
const (
	// MaxUploadPayload caps the decoded payload of one upload. Its base64 form (4/3 larger)
	// stays well inside the upstream content cap.
	MaxUploadPayload = 1 << 20
	maxUploadTopic   = 1024
	// UploadTopicPrefix and UploadRecordsTopic are the topics apps publish on for the
	// cloud (spec §5).
	UploadTopicPrefix  = "$hw/events/upload/"
	UploadRecordsTopic = "SYS/dis/upload_records"
)

// deviceStatusIn is what a DeviceStatus message may write: only the fields the contract lists.
// status.extensions is not read, so whatever a mapper put there in the cloud stays.
type deviceStatusIn struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Status     struct {
		Twins          []devicesv1beta1.Twin      `json:"twins"`
		State          devicesv1beta1.DeviceState `json:"state"`
		LastOnlineTime string                     `json:"lastOnlineTime"`
	} `json:"status"`
}

// parseDeviceStatus reads and checks a DeviceStatus message for key. It is the decoder of
// edge input that FuzzParseDeviceStatus exercises.
func parseDeviceStatus(key wire.Key, content []byte) (*deviceStatusIn, types.UID, error) {
	id, err := authz.ParseDeviceStatusIdentity(content)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if id.Namespace != key.Namespace || id.Name != key.Name {
		return nil, "", fmt.Errorf("%w: status for device %s/%s names %s/%s", ErrMalformed,
			key.Namespace, key.Name, clip(id.Namespace), clip(id.Name))
	}
	var in deviceStatusIn
	if err := decode(content, "device status", &in); err != nil {
		return nil, "", err
	}
	if (in.APIVersion != "" && in.APIVersion != authz.DeviceAPIVersion) || (in.Kind != "" && in.Kind != "DeviceStatus") {
		return nil, "", fmt.Errorf("%w: device status is a %s %s, want %s DeviceStatus", ErrMalformed,
			clip(in.APIVersion), clip(in.Kind), authz.DeviceAPIVersion)
	}
	st := &in.Status
	if len(st.Twins) > maxTwins {
		return nil, "", fmt.Errorf("%w: device status has %d twins, at most %d", ErrMalformed, len(st.Twins), maxTwins)
	}
	seen := make(map[string]bool, len(st.Twins))
	for i, tw := range st.Twins {
		switch {
		case tw.PropertyName == "" || len(tw.PropertyName) > maxPropertyName || !utf8.ValidString(tw.PropertyName):
			return nil, "", fmt.Errorf("%w: device status twins[%d]: propertyName must be 1-%d bytes of UTF-8", ErrMalformed, i, maxPropertyName)
		case seen[tw.PropertyName]:
			return nil, "", fmt.Errorf("%w: device status twins[%d]: property %q appears twice", ErrMalformed, i, clip(tw.PropertyName))
		}
		seen[tw.PropertyName] = true
	}
	if len(st.State) > maxStateLength {
		return nil, "", fmt.Errorf("%w: device status state is longer than %d bytes", ErrMalformed, maxStateLength)
	}
	if len(st.LastOnlineTime) > maxTimestampField {
		return nil, "", fmt.Errorf("%w: device status lastOnlineTime is longer than %d bytes", ErrMalformed, maxTimestampField)
	}
	return &in, types.UID(id.OwnerUID), nil
}

// deviceStatus writes the edge's view of a Device into its DeviceStatus: created on first
// report (same name, controller owner reference to the Device, so the garbage collector
// deletes it with the Device), then its status subresource updated, since a create does not
// set status on a resource with a status subresource.
func (h *Handler) deviceStatus(ctx context.Context, node string, key wire.Key, content json.RawMessage) error {
	if h.cfg.Devices == nil {
		return fmt.Errorf("device status: %w: cloudcore has no device API client", ErrUnsupported)
	}
	in, uid, err := parseDeviceStatus(key, content)
	if err != nil {
		return err
	}
	client := h.cfg.Devices.DevicesV1beta1().DeviceStatuses(key.Namespace)
	owner := metav1.OwnerReference{APIVersion: authz.DeviceAPIVersion, Kind: authz.DeviceKind, Name: key.Name, UID: uid,
		Controller: new(true), BlockOwnerDeletion: new(false)}
	for attempt := 1; ; attempt++ {
		var cur *devicesv1beta1.DeviceStatus
		err := h.call(ctx, "get device status", func(ctx context.Context) error {
			var err error
			cur, err = client.Get(ctx, key.Name, metav1.GetOptions{})
			return err
		})
		if apierrors.IsNotFound(err) {
			obj := &devicesv1beta1.DeviceStatus{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
				OwnerReferences: []metav1.OwnerReference{owner}}}
			err = h.call(ctx, "create device status", func(ctx context.Context) error {
				var err error
				cur, err = client.Create(ctx, obj, metav1.CreateOptions{})
				return err
			})
			if err == nil {
				h.log.Info("device status created", "node", node, "namespace", key.Namespace, "device", key.Name)
			}
		}
		if err != nil {
			if apierrors.IsAlreadyExists(err) && attempt < conflictAttempts {
				continue // created meanwhile: read it
			}
			return h.deviceStatusFailed(node, key, "write", err)
		}

		switch ref := metav1.GetControllerOf(cur); {
		case ref != nil && ref.UID != uid:
			// An earlier Device of that name owned it; the garbage collector deletes it, and
			// the edge's resend then creates this Device's.
			err := fmt.Errorf("%w: device status %s/%s belongs to an earlier Device (uid %s), which the garbage collector removes",
				hub.ErrTransient, key.Namespace, key.Name, ref.UID)
			h.log.Info("device status waits for the old one to go", "node", node, "namespace", key.Namespace, "device", key.Name, "err", err)
			return err
		case ref == nil:
			// Written by someone else without an owner: adopt it, so it goes with the Device.
			adopt := cur.DeepCopy()
			adopt.OwnerReferences = append(adopt.OwnerReferences, owner)
			err := h.call(ctx, "adopt device status", func(ctx context.Context) error {
				var err error
				cur, err = client.Update(ctx, adopt, metav1.UpdateOptions{})
				return err
			})
			if err != nil {
				if (apierrors.IsConflict(err) || apierrors.IsNotFound(err)) && attempt < conflictAttempts {
					continue
				}
				return h.deviceStatusFailed(node, key, "adopt", err)
			}
		}

		next := cur.DeepCopy()
		next.Status.Twins = in.Status.Twins
		next.Status.State = in.Status.State
		next.Status.LastOnlineTime = in.Status.LastOnlineTime
		if apiequality.Semantic.DeepEqual(cur.Status, next.Status) {
			h.log.Debug("device status unchanged", "node", node, "namespace", key.Namespace, "device", key.Name)
			return nil
		}
		err = h.call(ctx, "update device status", func(ctx context.Context) error {
			_, err := client.UpdateStatus(ctx, next, metav1.UpdateOptions{})
			return err
		})
		switch {
		case err == nil:
			h.log.Debug("device status updated", "node", node, "namespace", key.Namespace, "device", key.Name)
			return nil
		case (apierrors.IsConflict(err) || apierrors.IsNotFound(err)) && attempt < conflictAttempts:
			continue // changed or deleted meanwhile: read it again
		}
		return h.deviceStatusFailed(node, key, "update", err)
	}
}

func (h *Handler) deviceStatusFailed(node string, key wire.Key, what string, err error) error {
	err = fmt.Errorf("%s device status %s/%s: %w", what, key.Namespace, key.Name, err)
	h.log.Warn("device status write failed", "node", node, "namespace", key.Namespace, "device", key.Name, "err", err)
	return err
}

// uploadIn is an MQTT message an edge app published for the cloud.
type uploadIn struct {
	Topic   string `json:"topic"`
	Payload []byte `json:"payload"` // base64 on the wire
}

// parseUpload reads and checks an upload. It is the decoder FuzzParseUpload exercises.
func parseUpload(content []byte) (*uploadIn, error) {
	var in uploadIn
	if err := decode(content, "upload", &in); err != nil {
		return nil, err
	}
	t := in.Topic
	switch {
	case len(t) > maxUploadTopic || !utf8.ValidString(t) || strings.ContainsAny(t, "+#\x00"):
		return nil, fmt.Errorf("%w: upload topic must be at most %d bytes of UTF-8 without wildcards", ErrMalformed, maxUploadTopic)
	case t == UploadRecordsTopic:
	case strings.HasPrefix(t, UploadTopicPrefix) && len(t) > len(UploadTopicPrefix):
	default:
		return nil, fmt.Errorf("%w: upload topic %q is neither under %s nor %s", ErrMalformed, clip(t), UploadTopicPrefix, UploadRecordsTopic)
	}
	if len(in.Payload) > MaxUploadPayload {
		return nil, fmt.Errorf("%w: upload payload of %d bytes exceeds %d", ErrMalformed, len(in.Payload), MaxUploadPayload)
	}
	return &in, nil
}

// upload takes what an edge app published for the cloud. Routing it on (KubeEdge's rules and
// router) is later work: it is counted and logged.
func (h *Handler) upload(node string, content json.RawMessage) error {
	in, err := parseUpload(content)
	if err != nil {
		return err
	}
	h.uploadMu.Lock()
	h.uploads[node]++
	h.uploadMu.Unlock()
	h.log.Debug("mqtt upload", "node", node, "topic", in.Topic, "bytes", len(in.Payload))
	return nil
}

// Uploads returns, per node, how many MQTT uploads were taken since the node was last
// forgotten ([Handler.ForgetNode]).
func (h *Handler) Uploads() map[string]uint64 {
	h.uploadMu.Lock()
	defer h.uploadMu.Unlock()
	m := make(map[string]uint64, len(h.uploads))
	for n, c := range h.uploads {
		m[n] = c
	}
	return m
}
