//! The raw vector API (Milvus-style collections) through the router.

use crate::common::*;
use axum::body::Body;
use axum::http::{header, Request};
use serde_json::json;

fn delete(uri: &str) -> Request<Body> {
    Request::delete(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn collection_lifecycle_insert_search_get_delete() {
    let r = router();
    let create =
        json!({"name": "http_life", "dimension": 3, "metric_type": "L2", "index_type": "FLAT"});
    let (status, body) = json(&r, post_json("/api/collections", create.clone())).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["dimension"].as_u64(), body["metric_type"].as_str()),
        (Some(3), Some("L2"))
    );
    expect_error(
        &r,
        post_json("/api/collections", create),
        409,
        "collection_exists",
    )
    .await;

    let data = json!({"data": [
        {"id": 1, "vector": [0.0, 0.0, 0.0], "metadata": {"colour": "red"}},
        {"id": 2, "vector": [1.0, 0.0, 0.0], "metadata": {"colour": "blue"}},
        {"id": 3, "vector": [5.0, 5.0, 5.0]}
    ]});
    let (status, body) = json(&r, post_json("/api/collections/http_life/insert", data)).await;
    assert_eq!(
        (status, body["insert_count"].as_u64()),
        (200, Some(3)),
        "{body}"
    );

    let (_, info) = json(&r, get("/api/collections/http_life")).await;
    assert_eq!(info["count"], 3, "{info}");
    let (_, list) = json(&r, get("/api/collections")).await;
    let names: Vec<&str> = list["collections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(names.contains(&"http_life"), "{list}");

    // Exact L2 search: distances to (0.9, 0, 0) are 0.1 (id 2), 0.9 (id 1), ~8.4 (id 3).
    let search = json!({"data": [[0.9, 0.0, 0.0], [5.0, 5.0, 4.0]], "limit": 2,
                        "param": {"metric_type": "L2", "params": {}}});
    let (status, body) = json(&r, post_json("/api/collections/http_life/search", search)).await;
    assert_eq!(status, 200, "{body}");
    let first: Vec<u64> = body["results"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    assert_eq!(first, vec![2, 1]);
    assert!(
        (body["results"][0][0]["score"].as_f64().unwrap() - 0.1).abs() < 1e-4,
        "{body}"
    );
    assert_eq!(body["results"][1][0]["id"], 3);
    assert_eq!(body["results"][0][0]["metadata"]["colour"], "blue");

    let filtered = json!({"data": [[0.9, 0.0, 0.0]], "limit": 3,
                          "filter": {"eq": {"field": "colour", "value": "red"}}});
    let (_, body) = json(&r, post_json("/api/collections/http_life/search", filtered)).await;
    let ids: Vec<u64> = body["results"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1], "{body}");

    let (status, body) = json(
        &r,
        post_json("/api/collections/http_life/get", json!({"ids": [3, 1, 42]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut got: Vec<u64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, vec![1, 3]);

    let (status, body) = json(
        &r,
        post_json("/api/collections/http_life/delete", json!({"ids": [1, 42]})),
    )
    .await;
    assert_eq!(
        (status, body["delete_count"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    let (_, info) = json(&r, get("/api/collections/http_life")).await;
    assert_eq!(info["count"], 2, "{info}");

    let (status, body) = json(&r, delete("/api/collections/http_life")).await;
    assert_eq!(
        (status, body["dropped"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    expect_error(
        &r,
        get("/api/collections/http_life"),
        404,
        "unknown_collection",
    )
    .await;
}

#[tokio::test]
async fn collection_requests_are_validated() {
    let r = router();
    let create = |body: serde_json::Value| post_json("/api/collections", body);
    let bad = [
        // The database's name rule: 1 to 64 of A-Z a-z 0-9 _ -.
        json!({"name": "bad name", "dimension": 3}),
        json!({"name": "bad/name", "dimension": 3}),
        json!({"name": "x".repeat(65), "dimension": 3}),
        json!({"name": "ok_name", "dimension": 0}),
        json!({"name": "ok_name", "dimension": 3, "metric_type": "HAMMING"}),
        json!({"name": "ok_name", "dimension": 3, "index_type": "DISKANN"}),
        json!({"name": "ok_name", "dimension": 3, "index_type": "HNSW", "params": {"efconstruction": 8}}),
        json!({"name": "ok_name", "dimension": 3, "index_type": "HNSW", "params": {"M": 0}}),
        json!({"name": "ok_name", "dimension": 3, "index_type": "IVF_FLAT", "params": {"nlist": 0}}),
        json!({"name": "ok_name", "dimension": 3, "index_type": "IVF_SQ8", "params": {"refine_k": 0.5}}),
        json!({"name": "ok_name", "dimension": 3, "index_type": "HNSW_SQ", "params": {"refine": "yes"}}),
        json!({"name": "ok_name", "dimension": 3, "index_type": "HNSW_SQ", "params": {"sq_type": "SQ6"}}),
    ];
    for body in bad {
        expect_error(&r, create(body), 400, "invalid_parameter").await;
    }
    expect_error(&r, create(json!({"name": "ok_name"})), 400, "invalid_json").await;
    expect_error(
        &r,
        create(json!({"name": "ok_name", "dimension": 3, "colour": 1})),
        400,
        "invalid_json",
    )
    .await;
    let not_json = Request::post("/api/collections")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{name: oops"))
        .unwrap();
    expect_error(&r, not_json, 400, "invalid_json").await;
    let no_type = Request::post("/api/collections")
        .body(Body::from("{}"))
        .unwrap();
    expect_error(&r, no_type, 415, "unsupported_media_type").await;

    let (status, body) = json(
        &r,
        create(
            json!({"name": "http_checks", "dimension": 2, "metric_type": "IP",
        "index_type": "HNSW", "params": {"M": 8, "efConstruction": 40}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["params"]["M"], 8);
    let insert = |data| {
        post_json(
            "/api/collections/http_checks/insert",
            json!({ "data": data }),
        )
    };
    expect_error(
        &r,
        insert(json!([{"id": 1, "vector": [1.0, 2.0, 3.0]}])),
        400,
        "wrong_dimension",
    )
    .await;
    expect_error(&r, insert(json!([])), 400, "invalid_parameter").await;
    expect_error(
        &r,
        insert(json!([{"id": 1, "vector": [1.0, 2.0], "metadata": [1]}])),
        400,
        "invalid_parameter",
    )
    .await;
    expect_error(
        &r,
        insert(json!([{"id": -1, "vector": [1.0, 2.0]}])),
        400,
        "invalid_json",
    )
    .await;
    let (status, _) = json(&r, insert(json!([{"id": 7, "vector": [1.0, 2.0]}]))).await;
    assert_eq!(status, 200);

    let search = |body| post_json("/api/collections/http_checks/search", body);
    expect_error(&r, search(json!({"data": [[1.0]]})), 400, "wrong_dimension").await;
    expect_error(&r, search(json!({"data": []})), 400, "invalid_parameter").await;
    expect_error(
        &r,
        search(json!({"data": [[1.0, 2.0]], "limit": 0})),
        400,
        "invalid_parameter",
    )
    .await;
    expect_error(
        &r,
        search(json!({"data": [[1.0, 2.0]], "param": {"metric_type": "L2"}})),
        400,
        "invalid_parameter",
    )
    .await;
    expect_error(
        &r,
        search(json!({"data": [[1.0, 2.0]], "param": {"params": {"nprobe": "x"}}})),
        400,
        "invalid_json",
    )
    .await;
    expect_error(
        &r,
        search(json!({"data": [[1.0, 2.0]], "filter": {"like": 1}})),
        400,
        "invalid_json",
    )
    .await;
    let (status, body) = json(
        &r,
        search(json!({"data": [[1.0, 2.0]], "param": {"metric_type": "IP", "params": {"ef": 16}}})),
    )
    .await;
    assert_eq!(
        (status, body["results"][0][0]["id"].as_u64()),
        (200, Some(7)),
        "{body}"
    );

    for (uri, body) in [
        (
            "/api/collections/missing/insert",
            json!({"data": [{"id": 1, "vector": [1.0]}]}),
        ),
        ("/api/collections/missing/search", json!({"data": [[1.0]]})),
        ("/api/collections/missing/get", json!({"ids": [1]})),
        ("/api/collections/missing/delete", json!({"ids": [1]})),
    ] {
        expect_error(&r, post_json(uri, body), 404, "unknown_collection").await;
    }
    expect_error(
        &r,
        get("/api/collections/missing"),
        404,
        "unknown_collection",
    )
    .await;
    expect_error(
        &r,
        delete("/api/collections/missing"),
        404,
        "unknown_collection",
    )
    .await;
    let (status, _) = json(&r, delete("/api/collections/http_checks")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_image_collection_is_read_only() {
    let r = router();
    let (_, list) = json(&r, get("/api/collections")).await;
    let images = list["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["images"] == true)
        .unwrap_or_else(|| panic!("no image collection in {list}"))
        .clone();
    let name = images["name"].as_str().unwrap();
    let dim = images["dimension"].as_u64().unwrap() as usize;
    let vector = vec![0.5f32; dim];
    let (status, body) = json(
        &r,
        post_json(
            &format!("/api/collections/{name}/search"),
            json!({"data": [vector], "limit": 2}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body["results"][0].as_array().unwrap().is_empty());
    let insert = json!({"data": [{"id": 1, "vector": vector}]});
    expect_error(
        &r,
        post_json(&format!("/api/collections/{name}/insert"), insert),
        403,
        "read_only_collection",
    )
    .await;
    expect_error(
        &r,
        post_json(
            &format!("/api/collections/{name}/delete"),
            json!({"ids": [1]}),
        ),
        403,
        "read_only_collection",
    )
    .await;
    expect_error(
        &r,
        delete(&format!("/api/collections/{name}")),
        403,
        "read_only_collection",
    )
    .await;
}

/// The SQ8 kinds under their Milvus names: created with `refine` / `refine_k`, searched with a
/// per-request `refine_k`, which is validated.
#[tokio::test]
async fn quantised_collection_with_milvus_names() {
    let r = router();
    let create = json!({"name": "http_sq", "dimension": 3, "metric_type": "L2",
                        "index_type": "HNSW_SQ", "params": {"M": 8, "refine_k": 2.0}});
    let (status, body) = json(&r, post_json("/api/collections", create)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["index_type"], "HNSW_SQ", "{body}");
    assert_eq!(body["params"]["refine_k"], 2.0, "{body}");
    let data = json!({"data": [
        {"id": 1, "vector": [0.0, 0.0, 0.0]},
        {"id": 2, "vector": [1.0, 0.0, 0.0]},
        {"id": 3, "vector": [5.0, 5.0, 5.0]}
    ]});
    let (status, _) = json(&r, post_json("/api/collections/http_sq/insert", data)).await;
    assert_eq!(status, 200);
    let search = |refine_k: f64| {
        post_json(
            "/api/collections/http_sq/search",
            json!({"data": [[0.9, 0.0, 0.0]], "limit": 2, "param": {"params": {"refine_k": refine_k}}}),
        )
    };
    let (status, body) = json(&r, search(3.0)).await;
    assert_eq!(status, 200, "{body}");
    // Re-ranked hits carry exact distances.
    assert_eq!(body["results"][0][0]["id"], 2, "{body}");
    assert!(
        (body["results"][0][0]["score"].as_f64().unwrap() - 0.1).abs() < 1e-4,
        "{body}"
    );
    expect_error(&r, search(0.5), 400, "invalid_parameter").await;
}
