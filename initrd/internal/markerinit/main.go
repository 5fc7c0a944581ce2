// Command markerinit is the real init of the initrd comparison benchmark
// (make bench-initrd): it stamps its own start into the kernel log, so that
// it and the kernel's "Run /init as init process" line share one clock,
// prints both lines and its uptime on the console, and powers off. Any
// initrd that finds the root and execs /sbin/init can run it.
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	uptime := float64(ts.Sec) + float64(ts.Nsec)/1e9
	if err := os.WriteFile("/dev/kmsg", []byte("markerinit: started\n"), 0); err != nil {
		fmt.Printf("markerinit: write /dev/kmsg: %v\n", err)
	}
	fmt.Printf("markerinit: uptime %.6f\n", uptime)
	buf := make([]byte, 1<<21)
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		fmt.Printf("markerinit: read kernel log: %v\n", err)
	}
	for _, l := range strings.Split(string(buf[:max(n, 0)]), "\n") {
		if strings.Contains(l, "Run /init as init process") || strings.Contains(l, "markerinit: started") {
			fmt.Printf("markerinit: klog %s\n", strings.TrimSpace(l))
		}
	}
	fmt.Println("markerinit: powering off")
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Printf("markerinit: power off: %v\n", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}
