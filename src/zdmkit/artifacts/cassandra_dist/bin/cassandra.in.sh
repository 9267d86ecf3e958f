# Shared environment for bin/cassandra, bin/nodetool and bin/sstableloader; sourced, not run.
#
# Inputs (all optional):
#   CASSANDRA_HOME     the distribution root (default: the parent of bin/)
#   CASSANDRA_CONF     directory with cassandra.yaml and cassandra-rackdc.properties; any of
#                      logback.xml, logback-tools.xml and jvm*.options found there win over the
#                      copies in $CASSANDRA_HOME/conf (default: $CASSANDRA_HOME/conf)
#   JAVA, JAVA_HOME    the Java runtime (17 or newer)
#   JMX_PORT           local-only JMX port shared by the node and nodetool (default 7199)

if [ -z "${CASSANDRA_HOME:-}" ]; then
    CASSANDRA_HOME=$(dirname "$(dirname "$(readlink -f "$0")")")
fi
CASSANDRA_CONF=${CASSANDRA_CONF:-$CASSANDRA_HOME/conf}
JMX_PORT=${JMX_PORT:-7199}

if [ -z "${JAVA:-}" ]; then
    if [ -n "${JAVA_HOME:-}" ]; then
        JAVA=$JAVA_HOME/bin/java
    else
        JAVA=java
    fi
fi

# Both conf directories go on the class path: cassandra-rackdc.properties and the
# triggers directory are looked up as class path resources.
CLASSPATH="$CASSANDRA_CONF:$CASSANDRA_HOME/conf:$CASSANDRA_HOME/lib/*"

# conf_file NAME: the path of NAME in CASSANDRA_CONF, else in the distribution's conf/, else nothing.
conf_file() {
    if [ -f "$CASSANDRA_CONF/$1" ]; then
        echo "$CASSANDRA_CONF/$1"
    elif [ -f "$CASSANDRA_HOME/conf/$1" ]; then
        echo "$CASSANDRA_HOME/conf/$1"
    fi
}

# options_from FILE: the flags of a jvm options file (lines starting with "-") on one line.
options_from() {
    if [ -n "$1" ]; then
        sed -n 's/[[:space:]]*$//; /^-/p' "$1" | tr '\n' ' '
    fi
}

# java_major: the feature release of $JAVA (17 for "17.0.15"); fails below 17.
java_major() {
    major=$("$JAVA" -version 2>&1 | sed -n 's/.* version "\([0-9][0-9]*\).*/\1/p' | head -n 1)
    if [ -z "$major" ] || [ "$major" -lt 17 ]; then
        echo "$(basename "$0"): Java 17 or newer is required; $JAVA reports '${major:-no version}'" >&2
        return 1
    fi
    echo "$major"
}

# release_options KIND (server|clients): the flags for this Java release, falling back to
# the Java 17 file for newer releases that have no file of their own.
release_options() {
    major=$(java_major) || return 1
    file=$(conf_file "jvm$major-$1.options")
    if [ -z "$file" ]; then
        file=$(conf_file "jvm17-$1.options")
    fi
    options_from "$file"
}
