#!/usr/bin/env bash
# Start MariaDB and Redis if they are not already listening (this machine kind starts both;
# the commands are the ones it uses).
set -uo pipefail
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! up 6379; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! up 3306; then
  echo "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
for _ in $(seq 1 30); do
  if up 6379 && up 3306; then exit 0; fi
  sleep 1
done
echo "MariaDB or Redis did not come up" >&2
exit 1
