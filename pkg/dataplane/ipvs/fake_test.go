package ipvs

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"

	"github.com/cloudflare/ipvs"
)

// fakeKernel is an in-memory IPVS behind the library's Client interface.
// It answers as the kernel does where halo depends on it: EEXIST, ENOENT
// and ESRCH, the hashed flag on read-back, the netmask that a full service
// must carry, unknown schedulers refused, and the library's ErrNotExist for
// an empty dump. Every write is logged, so tests can assert that unchanged
// services and reals are never touched.
type fakeKernel struct {
	mu     sync.Mutex
	svcs   map[ident]*fakeSvc
	order  []ident
	writes []string
	// fail makes the next write of an operation fail once.
	fail map[string]error
}

type fakeSvc struct {
	svc   ipvs.ServiceExtended
	dests []ipvs.DestinationExtended
}

func newFake() *fakeKernel {
	return &fakeKernel{svcs: map[ident]*fakeSvc{}, fail: map[string]error{}}
}

func (f *fakeKernel) write(op string, what any) error {
	if err := f.fail[op]; err != nil {
		delete(f.fail, op)
		return err
	}
	f.writes = append(f.writes, fmt.Sprintf("%s %v", op, what))
	return nil
}

// Writes returns and clears the write log.
func (f *fakeKernel) Writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.writes
	f.writes = nil
	return w
}

func (f *fakeKernel) Info() (ipvs.Info, error) {
	return ipvs.Info{Version: [3]int{1, 2, 1}, ConnectionTableSize: 4096}, nil
}
func (f *fakeKernel) Config() (ipvs.Config, error) { return ipvs.Config{}, nil }
func (f *fakeKernel) SetConfig(ipvs.Config) error  { return nil }

func (f *fakeKernel) Services() ([]ipvs.ServiceExtended, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.order) == 0 {
		return nil, os.ErrNotExist
	}
	var out []ipvs.ServiceExtended
	for _, id := range f.order {
		out = append(out, f.svcs[id].svc)
	}
	return out, nil
}

func (f *fakeKernel) Service(s ipvs.Service) (ipvs.ServiceExtended, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs := f.svcs[identOfKernel(s)]
	if fs == nil {
		return ipvs.ServiceExtended{}, syscall.ESRCH
	}
	return fs.svc, nil
}

func checkService(s ipvs.Service) error {
	if !slices.Contains(Schedulers, s.Scheduler) {
		return syscall.ENOENT
	}
	if !s.Netmask.IsValid() || (s.Family == ipvs.INET) != s.Netmask.Is4() {
		return syscall.EINVAL
	}
	return nil
}

func (f *fakeKernel) CreateService(s ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := identOfKernel(s)
	if f.svcs[id] != nil {
		return syscall.EEXIST
	}
	if err := checkService(s); err != nil {
		return err
	}
	if err := f.write("create-service", id); err != nil {
		return err
	}
	s.Flags |= ipvs.ServiceHashed
	f.svcs[id] = &fakeSvc{svc: ipvs.ServiceExtended{Service: s}}
	f.order = append(f.order, id)
	return nil
}

func (f *fakeKernel) UpdateService(s ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs := f.svcs[identOfKernel(s)]
	if fs == nil {
		return syscall.ESRCH
	}
	if err := checkService(s); err != nil {
		return err
	}
	if err := f.write("update-service", identOfKernel(s)); err != nil {
		return err
	}
	s.Flags |= ipvs.ServiceHashed
	fs.svc.Service = s
	return nil
}

func (f *fakeKernel) RemoveService(s ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := identOfKernel(s)
	if f.svcs[id] == nil {
		return syscall.ESRCH
	}
	if err := f.write("remove-service", id); err != nil {
		return err
	}
	delete(f.svcs, id)
	f.order = slices.DeleteFunc(f.order, func(x ident) bool { return x == id })
	return nil
}

func (f *fakeKernel) Destinations(s ipvs.Service) ([]ipvs.DestinationExtended, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs := f.svcs[identOfKernel(s)]
	if fs == nil {
		return nil, syscall.ESRCH
	}
	if len(fs.dests) == 0 {
		return nil, os.ErrNotExist
	}
	return slices.Clone(fs.dests), nil
}

func (f *fakeKernel) dest(s ipvs.Service, d ipvs.Destination) (*fakeSvc, int, error) {
	fs := f.svcs[identOfKernel(s)]
	if fs == nil {
		return nil, 0, syscall.ESRCH
	}
	return fs, slices.IndexFunc(fs.dests, func(x ipvs.DestinationExtended) bool {
		return x.Address == d.Address && x.Port == d.Port
	}), nil
}

func (f *fakeKernel) CreateDestination(s ipvs.Service, d ipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs, i, err := f.dest(s, d)
	if err != nil {
		return err
	}
	if i >= 0 {
		return syscall.EEXIST
	}
	if d.TunnelType == ipvs.GUE && d.TunnelPort == 0 {
		return syscall.EINVAL
	}
	if err := f.write("create-dest", fmt.Sprintf("%s %s:%d", identOfKernel(s), d.Address, d.Port)); err != nil {
		return err
	}
	fs.dests = append(fs.dests, ipvs.DestinationExtended{Destination: d})
	return nil
}

func (f *fakeKernel) UpdateDestination(s ipvs.Service, d ipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs, i, err := f.dest(s, d)
	if err != nil {
		return err
	}
	if i < 0 {
		return syscall.ENOENT
	}
	if err := f.write("update-dest", fmt.Sprintf("%s %s:%d", identOfKernel(s), d.Address, d.Port)); err != nil {
		return err
	}
	fs.dests[i].Destination = d
	return nil
}

func (f *fakeKernel) RemoveDestination(s ipvs.Service, d ipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs, i, err := f.dest(s, d)
	if err != nil {
		return err
	}
	if i < 0 {
		return syscall.ENOENT
	}
	if err := f.write("remove-dest", fmt.Sprintf("%s %s:%d", identOfKernel(s), d.Address, d.Port)); err != nil {
		return err
	}
	fs.dests = slices.Delete(fs.dests, i, i+1)
	return nil
}

// setStats sets the counters of a service and of each of its reals.
func (f *fakeKernel) setStats(id ident, svc ipvs.Stats, dest func(d *ipvs.DestinationExtended)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs := f.svcs[id]
	fs.svc.Stats64 = svc
	for i := range fs.dests {
		dest(&fs.dests[i])
	}
}

var _ ipvs.Client = (*fakeKernel)(nil)
