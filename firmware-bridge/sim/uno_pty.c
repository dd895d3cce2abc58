/*
 * uno-pty: runs Uno firmware (an ATmega328P at 16 MHz) in simavr with UART0 on a
 * pseudo-terminal, in real time, so that the Node bridge can talk to it as it would to a board
 * on /dev/ttyACM0.
 *
 *   uno-pty [--id NAME] [--eeprom FILE] [--adc0-mv MV] [--temp-mv MV] FIRMWARE.elf
 *
 * It prints "pty /dev/pts/N" on stdout once the port exists, then "running". Signals:
 *   SIGUSR1          reset the MCU, as a real Uno resets when the host opens the port (DTR);
 *   SIGTERM, SIGINT  save the EEPROM and exit 0.
 *
 * Why real time: unthrottled simavr runs the AVR several times faster than the wall clock, so
 * millis() and every timeout in the firmware would be wrong. The loop below runs one simulated
 * millisecond at a time and sleeps whenever the simulation is ahead of the wall clock. When the
 * host is too busy to keep up, the simulation falls behind; past 50 ms it gives up catching up
 * (a burst at full speed would squeeze time instead) and counts the lag, like a slow crystal.
 *
 * EEPROM: --eeprom FILE loads the 1 KiB image from FILE when it exists and writes it back on
 * reset and exit, so the boot counter survives restarts of this program. --id NAME writes a fresh
 * image with that device id (layout: PROTOCOL.md, "Device identity") when there is no file yet.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "avr_adc.h"
#include "avr_eeprom.h"
#include "sim_avr.h"
#include "sim_elf.h"
#include "uart_pty.h"

#define EEPROM_SIZE 1024
#define SLICE_HZ 1000           /* the throttle checks the clock once per simulated millisecond */
#define MAX_LAG_NS 50000000ULL  /* past this, stop catching up */

static volatile sig_atomic_t reset_requested = 0;
static volatile sig_atomic_t stop_requested = 0;
static uint32_t adc0_mv = 2500;
static uint32_t temp_mv = 311;
static int adc0_wave = 1;

static void on_signal(int sig) {
  if (sig == SIGUSR1)
    reset_requested = 1;
  else
    stop_requested = 1;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !reset_requested && !stop_requested) {
  }
}

/* The firmware's own sleep would make simavr usleep as well; our throttle already keeps time. */
static void no_sleep(avr_t *avr, avr_cycle_count_t how_long) {
  (void)avr;
  (void)how_long;
}

/* simavr asks for the input voltages just before each conversion: A0 gets a slow triangle wave
 * (0-5 V over 20 simulated seconds) so readings change, the temperature sensor a constant. */
static void on_adc_trigger(struct avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq;
  (void)value;
  avr_t *avr = (avr_t *)param;
  uint32_t mv = adc0_mv;
  if (adc0_wave) {
    uint64_t ms = avr->cycle / (avr->frequency / 1000);
    uint32_t phase = (uint32_t)(ms % 20000);
    mv = phase < 10000 ? phase / 2 : (20000 - phase) / 2;
  }
  avr_raise_irq(avr_io_getirq(avr, AVR_IOCTL_ADC_GETIRQ, ADC_IRQ_ADC0), mv);
  avr_raise_irq(avr_io_getirq(avr, AVR_IOCTL_ADC_GETIRQ, ADC_IRQ_TEMP), temp_mv);
}

static int load_eeprom(const char *path, const char *id, uint8_t *image) {
  memset(image, 0xFF, EEPROM_SIZE);
  if (path) {
    FILE *f = fopen(path, "rb");
    if (f) {
      size_t n = fread(image, 1, EEPROM_SIZE, f);
      fclose(f);
      if (n != EEPROM_SIZE) {
        fprintf(stderr, "uno-pty: %s holds %zu bytes, expected %d\n", path, n, EEPROM_SIZE);
        return -1;
      }
      return 0;
    }
  }
  if (id) {
    if (strlen(id) == 0 || strlen(id) > 16) {
      fprintf(stderr, "uno-pty: --id must have 1 to 16 characters\n");
      return -1;
    }
    image[0] = 'R';
    image[1] = 'L';
    image[2] = 1;
    memset(image + 3, 0, 17);
    memcpy(image + 3, id, strlen(id));
    memset(image + 20, 0, 4);    /* boot counter: the firmware makes it 1 on its first boot */
    memset(image + 24, 0xFF, 4); /* sampling interval: the sketch's default */
  }
  return 0;
}

static void save_eeprom(avr_t *avr, const char *path) {
  if (!path) return;
  avr_eeprom_desc_t desc = {.ee = NULL, .offset = 0, .size = EEPROM_SIZE};
  avr_ioctl(avr, AVR_IOCTL_EEPROM_GET, &desc);
  if (!desc.ee) return;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f || fwrite(desc.ee, 1, EEPROM_SIZE, f) != EEPROM_SIZE || fclose(f) != 0) {
    fprintf(stderr, "uno-pty: cannot write %s: %s\n", tmp, strerror(errno));
    return;
  }
  rename(tmp, path);
}

static void usage(void) {
  fprintf(stderr,
          "usage: uno-pty [--id NAME] [--eeprom FILE] [--adc0-mv MV] [--temp-mv MV] FIRMWARE.elf\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *firmware = NULL, *eeprom_path = NULL, *id = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--id") && i + 1 < argc)
      id = argv[++i];
    else if (!strcmp(a, "--eeprom") && i + 1 < argc)
      eeprom_path = argv[++i];
    else if (!strcmp(a, "--adc0-mv") && i + 1 < argc) {
      adc0_mv = (uint32_t)strtoul(argv[++i], NULL, 10);
      adc0_wave = 0;
    } else if (!strcmp(a, "--temp-mv") && i + 1 < argc)
      temp_mv = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if (a[0] == '-')
      usage();
    else
      firmware = a;
  }
  if (!firmware) usage();
  setvbuf(stdout, NULL, _IOLBF, 0);
  /* A board keeps time whatever else the host does; a simulated one needs the CPU when it asks.
   * Best effort: without the privilege the nice value simply stays. */
  setpriority(PRIO_PROCESS, 0, -10);

  elf_firmware_t fw;
  memset(&fw, 0, sizeof fw);
  if (elf_read_firmware(firmware, &fw) != 0) {
    fprintf(stderr, "uno-pty: cannot read %s\n", firmware);
    return 1;
  }
  strcpy(fw.mmcu, "atmega328p");
  fw.frequency = 16000000;
  avr_t *avr = avr_make_mcu_by_name(fw.mmcu);
  if (!avr) {
    fprintf(stderr, "uno-pty: simavr does not know %s\n", fw.mmcu);
    return 1;
  }
  avr_init(avr);
  avr_load_firmware(avr, &fw);
  avr->log = LOG_ERROR;
  avr->sleep = no_sleep;
  avr->vcc = avr->avcc = avr->aref = 5000;

  static uint8_t image[EEPROM_SIZE];
  if (load_eeprom(eeprom_path, id, image) != 0) return 1;
  avr_eeprom_desc_t desc = {.ee = image, .offset = 0, .size = EEPROM_SIZE};
  avr_ioctl(avr, AVR_IOCTL_EEPROM_SET, &desc);

  avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_ADC_GETIRQ, ADC_IRQ_OUT_TRIGGER), on_adc_trigger,
                          avr);

  static uart_pty_t uart;
  uart_pty_init(avr, &uart);
  uart_pty_connect(&uart, '0');
  printf("pty %s\n", uart.port[0].slavename);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  printf("running\n");

  const avr_cycle_count_t slice = avr->frequency / SLICE_HZ;
  uint64_t t0 = now_ns();
  avr_cycle_count_t c0 = avr->cycle;
  uint64_t lag_ns = 0;
  int state = cpu_Running;
  while (!stop_requested) {
    avr_cycle_count_t target = avr->cycle + slice;
    while (avr->cycle < target) {
      state = avr_run(avr);
      if (state == cpu_Done || state == cpu_Crashed) {
        fprintf(stderr, "uno-pty: the firmware %s\n", state == cpu_Done ? "stopped" : "crashed");
        save_eeprom(avr, eeprom_path);
        return 1;
      }
    }
    if (reset_requested) {
      reset_requested = 0;
      save_eeprom(avr, eeprom_path);
      avr_reset(avr);
      printf("reset\n");
      t0 = now_ns();
      c0 = avr->cycle;
      continue;
    }
    uint64_t sim_ns = (uint64_t)(avr->cycle - c0) * 1000000000ULL / avr->frequency;
    uint64_t wall_ns = now_ns() - t0;
    if (sim_ns > wall_ns) {
      sleep_ns(sim_ns - wall_ns);
    } else if (wall_ns - sim_ns > MAX_LAG_NS) {
      lag_ns += wall_ns - sim_ns;
      t0 += wall_ns - sim_ns;
    }
  }
  save_eeprom(avr, eeprom_path);
  fprintf(stderr, "uno-pty: stopped; fell behind the wall clock by %llu ms in all\n",
          (unsigned long long)(lag_ns / 1000000ULL));
  return 0;
}
