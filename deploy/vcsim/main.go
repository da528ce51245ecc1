// vcsim-cdp: a small vCenter (VPX) API simulator for cdp tests and demos.
//
// It wraps govmomi's simulator package (Debian golang-github-vmware-govmomi-dev,
// 0.24.x; built in GOPATH mode by build.sh). The inventory is sized by flags,
// extra named distributed port groups can be added with -portgroups, and
// exactly one line is printed on stdout once the SOAP endpoint accepts requests:
//
//	VCSIM_URL=https://USER:PASS@127.0.0.1:PORT/sdk
//
// It then serves until SIGINT/SIGTERM and removes the temp dirs backing the
// model's LocalDS_N datastores. Simulator logs go to stderr.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err) // exit status 1, after run's deferred cleanup
	}
}

func run() error {
	// Catch signals before anything else: a SIGTERM right after the URL line (a test that
	// stops the simulator at once) must still run the deferred cleanup, not kill us.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)

	m := simulator.VPX() // defaults: 1 DC, 1 cluster x 3 hosts, 1 standalone host, 1 DS, 1 DVPG, 2 VMs per pool
	flag.IntVar(&m.Datacenter, "dc", m.Datacenter, "datacenters (DC0..)")
	flag.IntVar(&m.Cluster, "cluster", m.Cluster, "clusters per datacenter (DCn_C0..)")
	flag.IntVar(&m.ClusterHost, "host", m.ClusterHost, "hosts per cluster (DCn_Cm_H0..)")
	flag.IntVar(&m.Host, "standalone-host", m.Host, "standalone hosts per datacenter (DCn_H0..)")
	flag.IntVar(&m.Datastore, "ds", m.Datastore, "local datastores mounted on every host (LocalDS_0..)")
	flag.IntVar(&m.Portgroup, "pg", m.Portgroup, "numbered DV port groups per datacenter (DCn_DVPG0..)")
	flag.IntVar(&m.Machine, "vm", m.Machine, "VMs per resource pool / standalone host (powered on)")
	portgroups := flag.String("portgroups", "", "comma-separated extra DV port group names, added to every datacenter")
	listen := flag.String("listen", "127.0.0.1:0", "listen address; port 0 picks a free port")
	user := flag.String("username", "user", "login user name (only this user/password pair is accepted)")
	pass := flag.String("password", "pass", "login password")
	flag.Parse()

	err := m.Create()
	defer m.Remove() // deletes the LocalDS_N temp dirs
	if err == nil && *portgroups != "" {
		// The model's in-process client calls the Service directly (no HTTP, no login).
		c, _ := vim25.NewClient(context.Background(), m.Service)
		err = addPortgroups(context.Background(), c, strings.Split(*portgroups, ","))
	}
	if err != nil {
		return err
	}

	// Setting Listen.User (even to "user:pass") makes SessionManager.Login compare the
	// password; with vcsim's own DefaultLogin it would accept any non-empty pair.
	m.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, *pass)}
	m.Service.TLS = new(tls.Config) // served with Go's built-in 127.0.0.1 test certificate
	m.Service.RegisterEndpoints = true
	s := m.Service.NewServer() // listening and serving once this returns
	defer s.Close()

	fmt.Printf("VCSIM_URL=%s\n", s.URL)
	_ = os.Stdout.Sync()
	<-sig
	return nil
}

// addPortgroups adds each named DV port group to the first DVS of every
// datacenter, creating "DVS0" (joined by all the datacenter's hosts) if -pg 0 left none.
func addPortgroups(ctx context.Context, c *vim25.Client, names []string) error {
	finder := find.NewFinder(c, false)
	dcs, err := finder.DatacenterList(ctx, "*")
	if err != nil {
		return err
	}
	for _, dc := range dcs {
		finder.SetDatacenter(dc)
		var dvs *object.DistributedVirtualSwitch
		nets, _ := finder.NetworkList(ctx, "*")
		for _, n := range nets {
			if d, ok := n.(*object.DistributedVirtualSwitch); ok && dvs == nil {
				dvs = d
			}
		}
		if dvs == nil {
			if dvs, err = createDVS(ctx, c, finder, dc); err != nil {
				return err
			}
		}
		for _, name := range names {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			// earlyBinding + 128 ports: what the vSphere client creates by default.
			spec := types.DVPortgroupConfigSpec{Name: name, Type: "earlyBinding", NumPorts: 128}
			task, err := dvs.AddPortgroup(ctx, []types.DVPortgroupConfigSpec{spec})
			if err == nil {
				err = task.Wait(ctx)
			}
			if err != nil {
				return fmt.Errorf("port group %q in %s: %w", name, dc.Name(), err)
			}
		}
	}
	return nil
}

// createDVS makes "DVS0" in dc's network folder and joins all of dc's hosts to it
// (vcsim refuses DVPG NIC backings unless every host of the VM's cluster is a
// member; CreateDVS_Task ignores spec hosts, so they are added by a reconfigure).
func createDVS(ctx context.Context, c *vim25.Client, finder *find.Finder, dc *object.Datacenter) (*object.DistributedVirtualSwitch, error) {
	folders, err := dc.Folders(ctx)
	if err != nil {
		return nil, err
	}
	spec := types.DVSCreateSpec{ConfigSpec: &types.VMwareDVSConfigSpec{DVSConfigSpec: types.DVSConfigSpec{Name: "DVS0"}}}
	task, err := folders.NetworkFolder.CreateDVS(ctx, spec)
	if err != nil {
		return nil, err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return nil, err
	}
	dvs := object.NewDistributedVirtualSwitch(c, info.Result.(types.ManagedObjectReference))
	members := &types.DVSConfigSpec{}
	hosts, _ := finder.HostSystemList(ctx, "*") // NotFound when the DC has no hosts
	for _, h := range hosts {
		members.Host = append(members.Host, types.DistributedVirtualSwitchHostMemberConfigSpec{Operation: "add", Host: h.Reference()})
	}
	if task, err = dvs.Reconfigure(ctx, members); err == nil {
		err = task.Wait(ctx)
	}
	return dvs, err
}
