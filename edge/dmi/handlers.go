package dmi

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/validation"

	pb "github.com/skerry-io/skerry/api/dmi/v1beta1"
	"github.com/skerry-io/skerry/edge/devicetwin"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Limits on what a mapper may send.
const (
	MaxTwins          = 1024      // twins in one status report
	MaxValueBytes     = 64 << 10  // one twin value
	MaxMetadata       = 32        // metadata entries of one value
	MaxMetadataBytes  = 1024      // one metadata key or value
	maxNameBytes      = 253       // property names, protocols
	maxVersionBytes   = 64        // mapper version, api_version, state
	maxMapperName     = 63        // mapper names
	defaultNamespace  = "default" // of reports that name none, as KubeEdge
	unixAddressPrefix = "unix://"
)

// DeviceStates are the connectivity states a mapper may report (KubeEdge's, compared
// case-insensitively).
var DeviceStates = []string{"ok", "online", "offline", "unhealthy", "unknown", "disconnected"}

var mapperName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

// handler serves DeviceManagerService. Access control is the socket's mode and group: a
// unix socket carries no caller identity DMI could check, so any client that can connect is
// trusted to speak for the mapper it names. Reports are accepted only for devices on this
// node that a registered mapper serves.
type handler struct {
	pb.UnimplementedDeviceManagerServiceServer
	s *Server
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// MapperRegister registers (or re-registers) a mapper and answers with the node's devices
// of its protocol and their models.
func (h *handler) MapperRegister(ctx context.Context, req *pb.MapperRegisterRequest) (*pb.MapperRegisterResponse, error) {
	r, err := validateRegistration(req.GetMapper())
	if err != nil {
		return nil, invalid("mapper: %v", err)
	}
	return h.s.register(ctx, r, req.GetWithData())
}

// ReportDeviceStatus passes a mapper's twins to the device twin.
func (h *handler) ReportDeviceStatus(ctx context.Context, req *pb.ReportDeviceStatusRequest) (*pb.ReportDeviceStatusResponse, error) {
	k, reports, err := validateStatus(req)
	if err != nil {
		return nil, err
	}
	if err := h.s.checkReport(k, reports); err != nil {
		return nil, err
	}
	if len(reports) > 0 {
		if err := h.s.twins.ReportTwins(ctx, k.Namespace, k.Name, reports); err != nil {
			return nil, twinError(ctx, k, err)
		}
	}
	return &pb.ReportDeviceStatusResponse{}, nil
}

// ReportDeviceStates passes a mapper's device state to the device twin.
func (h *handler) ReportDeviceStates(ctx context.Context, req *pb.ReportDeviceStatesRequest) (*pb.ReportDeviceStatesResponse, error) {
	k, err := validateDeviceKey(req.GetDeviceNamespace(), req.GetDeviceName())
	if err != nil {
		return nil, err
	}
	state := strings.ToLower(req.GetState())
	if !contains(DeviceStates, state) {
		return nil, invalid("state %q is not one of %s", shorten(req.GetState()), strings.Join(DeviceStates, ", "))
	}
	if err := h.s.checkReport(k, nil); err != nil {
		return nil, err
	}
	if err := h.s.twins.ReportState(ctx, k.Namespace, k.Name, state); err != nil {
		return nil, twinError(ctx, k, err)
	}
	return &pb.ReportDeviceStatesResponse{}, nil
}

// twinError turns the twin's refusal into a status: NotFound for a device or property the
// twin does not know (it may have just been removed), InvalidArgument for a value that does
// not fit, Unavailable for anything else (the store failed: the mapper may retry).
func twinError(ctx context.Context, k objKey, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, devicetwin.ErrNotFound):
		return status.Errorf(codes.NotFound, "device %s: %v", k, err)
	case errors.Is(err, devicetwin.ErrInvalid):
		return status.Errorf(codes.InvalidArgument, "device %s: %v", k, err)
	}
	return status.Errorf(codes.Unavailable, "device %s: %v", k, err)
}

// checkReport accepts a report only for a device on this node that a registered mapper
// serves, naming properties the device or its model has.
func (s *Server) checkReport(k objKey, reports []devicetwin.Report) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[k]
	if d == nil {
		return status.Errorf(codes.NotFound, "device %s is not on this node", k)
	}
	if p := protocolOf(d); s.protocolMapperLocked(p) == nil {
		return status.Errorf(codes.FailedPrecondition, "no mapper is registered for protocol %q of device %s; call MapperRegister first", p, k)
	}
	if len(reports) == 0 {
		return nil
	}
	props := map[string]bool{}
	for _, p := range d.Spec.Properties {
		props[p.Name] = true
	}
	if mk, ok := modelOf(d); ok {
		if m := s.models[mk]; m != nil {
			for _, p := range m.Spec.Properties {
				props[p.Name] = true
			}
		}
	}
	for _, r := range reports {
		if !props[r.Property] {
			return invalid("device %s has no property %q", k, shorten(r.Property))
		}
	}
	return nil
}

// validateRegistration checks what a mapper says of itself.
func validateRegistration(info *pb.MapperInfo) (registration, error) {
	if info == nil {
		return registration{}, errors.New("mapper info is required")
	}
	r := registration{
		Name:       info.GetName(),
		Protocol:   info.GetProtocol(),
		Version:    info.GetVersion(),
		APIVersion: info.GetApiVersion(),
	}
	switch {
	case r.Name == "":
		return r, errors.New("name is required")
	case len(r.Name) > maxMapperName || !mapperName.MatchString(r.Name) ||
		(wire.Key{Type: MapperType, Name: r.key()}).Validate() != nil:
		return r, fmt.Errorf("name %q must be at most %d letters, digits, '-' and '.', starting and ending with a letter or digit", shorten(r.Name), maxMapperName)
	}
	if err := checkToken("protocol", r.Protocol, maxNameBytes, true); err != nil {
		return r, err
	}
	if err := checkToken("version", r.Version, maxVersionBytes, false); err != nil {
		return r, err
	}
	if err := checkToken("api_version", r.APIVersion, maxVersionBytes, false); err != nil {
		return r, err
	}
	if err := checkToken("state", info.GetState(), maxVersionBytes, false); err != nil {
		return r, err
	}
	addr := string(info.GetAddress())
	addr = strings.TrimPrefix(addr, unixAddressPrefix) // some mappers send a URL
	switch {
	case addr == "":
		return r, errors.New("address (the mapper's unix socket) is required")
	case len(addr) > maxSocketPath:
		return r, fmt.Errorf("address is %d bytes; a unix socket path has at most %d", len(addr), maxSocketPath)
	case !utf8.ValidString(addr) || strings.IndexFunc(addr, unicode.IsControl) >= 0:
		return r, fmt.Errorf("address %q contains invalid or control characters", addr)
	case !filepath.IsAbs(addr):
		return r, fmt.Errorf("address %q must be an absolute unix socket path", addr)
	}
	r.Address = addr
	return r, nil
}

// checkToken accepts printable, space-free text of at most max bytes.
func checkToken(field, v string, max int, required bool) error {
	switch {
	case v == "" && required:
		return fmt.Errorf("%s is required", field)
	case len(v) > max:
		return fmt.Errorf("%s is longer than %d bytes", field, max)
	case !utf8.ValidString(v) || strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0:
		return fmt.Errorf("%s %q must be printable text without spaces", field, shorten(v))
	}
	return nil
}

// validateDeviceKey checks a device's namespace and name; an empty namespace is "default".
func validateDeviceKey(namespace, name string) (objKey, error) {
	if namespace == "" {
		namespace = defaultNamespace
	}
	if name == "" {
		return objKey{}, invalid("deviceName is required")
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return objKey{}, invalid("deviceNamespace %q: %s", shorten(namespace), errs[0])
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return objKey{}, invalid("deviceName %q: %s", shorten(name), errs[0])
	}
	return objKey{namespace, name}, nil
}

// validateStatus checks a status report and converts its twins.
func validateStatus(req *pb.ReportDeviceStatusRequest) (objKey, []devicetwin.Report, error) {
	k, err := validateDeviceKey(req.GetDeviceNamespace(), req.GetDeviceName())
	if err != nil {
		return objKey{}, nil, err
	}
	st := req.GetReportedDevice()
	if st == nil {
		return objKey{}, nil, invalid("reportedDevice is required")
	}
	twins := st.GetTwins()
	if len(twins) > MaxTwins {
		return objKey{}, nil, invalid("%d twins; at most %d per report", len(twins), MaxTwins)
	}
	reports := make([]devicetwin.Report, 0, len(twins))
	seen := map[string]bool{}
	for i, t := range twins {
		name := t.GetPropertyName()
		switch {
		case name == "":
			return objKey{}, nil, invalid("twins[%d]: propertyName is required", i)
		case len(name) > maxNameBytes:
			return objKey{}, nil, invalid("twins[%d]: propertyName is longer than %d bytes", i, maxNameBytes)
		case seen[name]:
			return objKey{}, nil, invalid("twins[%d]: property %q reported twice", i, shorten(name))
		case t.GetReported() == nil && t.GetObservedDesired() == nil:
			return objKey{}, nil, invalid("twins[%d] (%s): neither reported nor observedDesired is set", i, shorten(name))
		}
		seen[name] = true
		rep := devicetwin.Report{Property: name}
		if rep.Reported, err = twinValue(t.GetReported()); err != nil {
			return objKey{}, nil, invalid("twins[%d] (%s): reported: %v", i, shorten(name), err)
		}
		if rep.ObservedDesired, err = twinValue(t.GetObservedDesired()); err != nil {
			return objKey{}, nil, invalid("twins[%d] (%s): observedDesired: %v", i, shorten(name), err)
		}
		reports = append(reports, rep)
	}
	return k, reports, nil
}

func twinValue(p *pb.TwinProperty) (*devicetwin.Value, error) {
	if p == nil {
		return nil, nil
	}
	if len(p.GetValue()) > MaxValueBytes {
		return nil, fmt.Errorf("value is %d bytes; at most %d", len(p.GetValue()), MaxValueBytes)
	}
	if len(p.GetMetadata()) > MaxMetadata {
		return nil, fmt.Errorf("%d metadata entries; at most %d", len(p.GetMetadata()), MaxMetadata)
	}
	v := &devicetwin.Value{Value: p.GetValue()}
	if len(p.GetMetadata()) > 0 {
		v.Metadata = make(map[string]string, len(p.GetMetadata()))
	}
	for key, val := range p.GetMetadata() {
		if key == "" || len(key) > MaxMetadataBytes || len(val) > MaxMetadataBytes {
			return nil, fmt.Errorf("metadata key %q: keys must be 1-%d bytes and values at most %d", shorten(key), MaxMetadataBytes, MaxMetadataBytes)
		}
		v.Metadata[key] = val
	}
	return v, nil
}

// shorten keeps error messages bounded whatever a client sends.
func shorten(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
