//! Partition layout: event-time partitions (day, hour) and field partitions together.

use tributary_tests::{EVENTS_SCHEMA, TempProject};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_hour_and_field_partitions_make_hive_folders_and_filter_right() {
    let schema = EVENTS_SCHEMA.to_string()
        + "\n[[partitions]]\nname = \"hr\"\nfrom = \"event_time\"\ntransform = \"hour\"\n\
           \n[[partitions]]\nname = \"device\"\n";
    let config =
        "[pipelines.events]\ntable = \"events\"\nsource = { type = \"file\", path = \"data\" }\n";
    let p = TempProject::new(config, &[("events", &schema)]);
    p.gen_events(3000, 2, 0.0, 21);
    let s = &p.run().await[0];
    assert_eq!(s.records_written, 3000);

    // dt=YYYY-MM-DD/hr=YYYY-MM-DDTHH/device=ios/part-....parquet
    let table = p.path().join("lake/events");
    let day = table.join("dt=2024-06-03");
    assert!(day.is_dir(), "no {}", day.display());
    let hour = std::fs::read_dir(&day)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let hour_name = hour.file_name().unwrap().to_string_lossy().to_string();
    assert!(hour_name.starts_with("hr=2024-06-03T"), "{hour_name}");
    let devices: Vec<String> = std::fs::read_dir(&hour)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        devices.iter().all(|d| d.starts_with("device=")),
        "{devices:?}"
    );

    // Partition values come from event time: every row's dt and hr agree with it.
    assert_eq!(
        p.count("SELECT count(*) FROM events WHERE dt <> to_char(event_time, '%Y-%m-%d') OR hr <> to_char(event_time, '%Y-%m-%dT%H')").await,
        0
    );
    // A filter on partition columns answers like the same filter on the data itself.
    let by_partition = p
        .count("SELECT count(*) FROM events WHERE device = 'pos' AND dt = '2024-06-03'")
        .await;
    let by_data = p
        .count("SELECT count(*) FROM events WHERE device || '' = 'pos' AND to_char(event_time, '%Y-%m-%d') = '2024-06-03'")
        .await;
    assert!(by_partition > 0);
    assert_eq!(by_partition, by_data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_roll_at_max_file_rows() {
    let p = TempProject::events("[pipelines.events.sink]\nmax_file_rows = 700\n");
    p.gen_events(6000, 1, 0.0, 22);
    let s = &p.run().await[0];
    assert_eq!(s.records_written, 6000);
    // No file over the limit, and the rows still all there, in one commit.
    let table = p.lake().await.load("events").await.unwrap().unwrap();
    let info = tributary::lake::table_info("events", &table).await.unwrap();
    assert_eq!(info.rows, 6000);
    assert_eq!(info.version, 1);
    assert!(info.files >= 6000 / 700, "{} files", info.files);
    let snapshot = table.snapshot().unwrap();
    for f in snapshot.log_data().iter() {
        let n = f.num_records().unwrap();
        assert!(n <= 700, "a file of {n} rows");
    }
}
