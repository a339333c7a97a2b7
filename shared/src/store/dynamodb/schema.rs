//! The tables, for tests and local setups (the cloud gets them from `template.yaml`).

use super::*;

impl DynamoStore {
    /// Creates the three tables when missing (on-demand billing, the `by_user` index), waits
    /// until they are active and turns on TTL for sessions and blacklist. For tests and local
    /// setups: the cloud gets its tables from `template.yaml`.
    pub async fn create_tables(&self) -> StoreResult<()> {
        let string_key = |table: &str, key: &str| -> StoreResult<_> {
            Ok(self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(built(
                    AttributeDefinition::builder().attribute_name(key).attribute_type(ScalarAttributeType::S).build(),
                )?)
                .key_schema(built(KeySchemaElement::builder().attribute_name(key).key_type(KeyType::Hash).build())?))
        };
        let users = string_key(&self.tables.users, PK)?;
        let blacklist = string_key(&self.tables.blacklist, "jti")?;
        let throttle = string_key(&self.tables.throttle, THROTTLE_KEY)?;
        let sessions = string_key(&self.tables.sessions, "session_id")?
            .attribute_definitions(built(
                AttributeDefinition::builder().attribute_name("user_id").attribute_type(ScalarAttributeType::N).build(),
            )?)
            .global_secondary_indexes(built(
                GlobalSecondaryIndex::builder()
                    .index_name(BY_USER_INDEX)
                    .key_schema(built(
                        KeySchemaElement::builder().attribute_name("user_id").key_type(KeyType::Hash).build(),
                    )?)
                    .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                    .build(),
            )?);
        for request in [users, sessions, blacklist, throttle] {
            match request.send().await {
                Ok(_) => {}
                Err(e) if error_code(&e) == Some("ResourceInUseException") => {}
                Err(e) => return Err(sdk_error(e)),
            }
        }
        for table in [&self.tables.users, &self.tables.sessions, &self.tables.blacklist, &self.tables.throttle] {
            self.wait_active(table).await?;
        }
        for table in [&self.tables.sessions, &self.tables.blacklist, &self.tables.throttle] {
            let ttl = self.client.describe_time_to_live().table_name(table).send().await.map_err(sdk_error)?;
            let status = ttl.time_to_live_description().and_then(|d| d.time_to_live_status());
            if matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
                continue;
            }
            self.client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(built(
                    TimeToLiveSpecification::builder().enabled(true).attribute_name(TTL_ATTRIBUTE).build(),
                )?)
                .send()
                .await
                .map_err(sdk_error)?;
        }
        Ok(())
    }

    async fn wait_active(&self, table: &str) -> StoreResult<()> {
        for _ in 0..300 {
            let out = self.client.describe_table().table_name(table).send().await.map_err(sdk_error)?;
            let description = out.table();
            let table_active = description.and_then(|t| t.table_status()) == Some(&TableStatus::Active);
            let indexes_active = description
                .map(|t| t.global_secondary_indexes())
                .unwrap_or_default()
                .iter()
                .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active));
            if table_active && indexes_active {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(StoreError::Unavailable(format!("table {table} did not become active")))
    }
}
