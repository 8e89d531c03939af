# One image for every process: the web admin, a Celery worker and Celery beat
# (the command picks which), with Java 17 and the S3A connector for Spark jobs. A JDK,
# not a JRE: the SQL endpoint (sql-server) compiles its read-only file system on start.
# Runs as the unprivileged user robson; compose.yaml shows the whole set on one machine.
FROM python:3.11-slim-bookworm

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_DEBUG=false \
    DATALAKE_VAR_DIR=/var/lib/robson-datalake

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jdk-headless curl ca-certificates procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# Spark cannot fetch jars at run time in production either: ship the S3A connector
# (hadoop-aws) for the exact Hadoop client bundled with pyspark, and the AWS SDK bundle
# version that this Hadoop release declares in its own POM.
RUN set -eux; \
    jars="$(python -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"; \
    hadoop="$(find "$jars" -maxdepth 1 -name 'hadoop-client-api-*.jar' -printf '%f\n' \
        | sed -n 's/^hadoop-client-api-\(.*\)\.jar$/\1/p')"; \
    test -n "$hadoop"; \
    maven=https://repo1.maven.org/maven2; \
    sdk="$(curl -fsSL "$maven/org/apache/hadoop/hadoop-project/$hadoop/hadoop-project-$hadoop.pom" \
        | sed -n 's:.*<aws-java-sdk-v2.version>\(.*\)</aws-java-sdk-v2.version>.*:\1:p' | head -n1)"; \
    test -n "$sdk"; \
    curl -fsSL -o "$jars/hadoop-aws-$hadoop.jar" \
        "$maven/org/apache/hadoop/hadoop-aws/$hadoop/hadoop-aws-$hadoop.jar"; \
    curl -fsSL -o "$jars/bundle-$sdk.jar" \
        "$maven/software/amazon/awssdk/bundle/$sdk/bundle-$sdk.jar"

COPY . .
RUN useradd --system --create-home --uid 10001 robson \
    && mkdir -p "$DATALAKE_VAR_DIR" && chown robson "$DATALAKE_VAR_DIR" \
    && DJANGO_SECRET_KEY=build-only python manage.py collectstatic --no-input -v 0
USER 10001

EXPOSE 8000 15002
# web: GET /healthz; worker: answers a Celery ping; beat: reaches its database.
HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 \
    CMD ["/app/docker-entrypoint.sh", "healthcheck"]
ENTRYPOINT ["/app/docker-entrypoint.sh"]
CMD ["web"]
