// The DM Job function app: Flex Consumption site (core module) + its app settings + optional Entra ID auth.
//
// App settings: every setting declared in shared/settings.py is set here (tests/infra checks it), except the
// local-only ones listed in tests/infra/test_settings_coverage.py. Settings are grouped in variables whose names
// end in `AppSettings`, as in shared/settings.py. Secrets are Key Vault references or empty, never values.
param name string
param location string = resourceGroup().location
param tags object = {}
param serviceName string = 'api'

// Hosting
param applicationInsightsName string
param appServicePlanId string
param storageAccountName string
param deploymentStorageContainerName string
param virtualNetworkSubnetId string = ''
param identityId string
param identityClientId string
param runtimeName string = 'python'
param runtimeVersion string = '3.11'
param instanceMemoryMB int = 2048
param maximumInstanceCount int = 100

// Jobs
param jobStorePrefix string = 'dmjob'
@description('Public URL of the job routes given to jobs as DM_JOB_URL; default https://<app host>/api/jobs.')
param publicJobsUrl string = ''
param jobEnvPassthrough string = ''
param jobEnvExport string = ''
param jobRunnerModules string = ''
param jobMaxRunSeconds string = '172800'

// DMSS
param dmssUrl string = 'http://127.0.0.1:5000'
param publicDmssUrl string = ''

// Containers (Azure Container Instances, Omnia classic, Radix)
param aciResourceGroupName string
param aciLocation string = location
param azureResourceManagerUrl string = 'https://management.azure.com'
param jobsIdentityId string = ''
param aciRegistryServer string = ''
param aciRegistryUsername string = ''
param omniaSubnetId string = ''
param omniaLogAnalyticsWorkspaceId string = ''
param radixSchedulerUrlTemplate string = 'http://{jobName}:{schedulerPort}'

// Secrets: names of secrets in an existing Key Vault; empty = setting left empty.
param keyVaultName string = ''
param dmssAppAccessKeySecretName string = ''
param aciRegistryPasswordSecretName string = ''
param omniaLogAnalyticsWorkspaceKeySecretName string = ''

// Durable Functions backend
@allowed(['AzureStorage', 'DurableTaskScheduler'])
param durableBackend string = 'AzureStorage'
param dtsEndpoint string = ''
param taskHubName string = ''

// Callers: App Service Authentication with Entra ID
param enableEntraAuth bool = false
param entraClientId string = ''
param entraRequireAuthentication bool = true
param entraAllowedAudiences array = []
param entraAllowedApplications array = []

@description('Extra or overriding app settings (non-secret); cannot override storage identity or ENABLE_LOCAL_RUNNERS.')
param appSettingsOverrides object = {}

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

module functionApp '../core/host/functions-flexconsumption.bicep' = {
  name: '${serviceName}-flex-consumption'
  params: {
    name: name
    location: location
    tags: union(tags, { 'azd-service-name': serviceName })
    appServicePlanId: appServicePlanId
    storageAccountName: storageAccountName
    deploymentStorageContainerName: deploymentStorageContainerName
    virtualNetworkSubnetId: virtualNetworkSubnetId
    identityId: identityId
    runtimeName: runtimeName
    runtimeVersion: runtimeVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
  }
}

var useKeyVault = !empty(keyVaultName)
var kvPrefix = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName='

// --- Functions host and storage: identity-based connection, no AzureWebJobsStorage connection string ----------
var hostAppSettings = {
  AzureWebJobsStorage__accountName: stg.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: stg.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: stg.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: stg.properties.primaryEndpoints.table
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The Python worker runs every sync function (HTTP, orchestrator, activities) on one pool of this many threads
  // (default min(32, cpu + 4): 6 on 2 cores). host.json lets 10 activities and 10 orchestrator episodes run at
  // once; 24 threads leave 4 that Durable work can never take, so status GETs answer while 10 activities hang
  // (bench/bench_responsive.py). Keep it >= maxConcurrentActivityFunctions + maxConcurrentOrchestratorFunctions + 4.
  PYTHON_THREADPOOL_THREAD_COUNT: '24'
}

// --- Jobs ------------------------------------------------------------------------------------------------
var jobAppSettings = {
  JOB_STORE_PREFIX: jobStorePrefix
  DM_JOB_URL: empty(publicJobsUrl) ? 'https://${functionApp.outputs.defaultHostName}/api/jobs' : publicJobsUrl
  JOB_ENV_PASSTHROUGH: jobEnvPassthrough
  JOB_ENV_EXPORT: jobEnvExport
  JOB_MAX_RUN_SECONDS: jobMaxRunSeconds
  ORCHESTRATION_HISTORY_DAYS: '30'
  POLL_INTERVAL_MIN_SECONDS: '1'
  POLL_INTERVAL_MAX_SECONDS: '60'
  POLL_BACKOFF_FACTOR: '2'
  JOB_FRESHNESS_SECONDS: '5'
  LOG_TAIL_LINES: '200'
  JOB_RUNNER_MODULES: jobRunnerModules
}

// --- Callers: identity only from App Service Authentication headers in the cloud ----------------------------
var callerAppSettings = {
  CALLER_IDENTITY_SOURCE: 'easyauth'
}

// --- DMSS --------------------------------------------------------------------------------------------------
var dmssAppSettings = {
  DMSS_URL: dmssUrl
  PUBLIC_DMSS_URL: publicDmssUrl
  DMSS_TOKEN_TTL_SECONDS: '2592000'
  DMSS_TIMEOUT_SECONDS: '10'
  DMSS_ACCESS_CACHE_SECONDS: '60'
}

// --- Containers and clouds -----------------------------------------------------------------------------------
var containerAppSettings = {
  AZURE_SUBSCRIPTION_ID: subscription().subscriptionId
  ACI_RESOURCE_GROUP: aciResourceGroupName
  ACI_LOCATION: aciLocation
  AZURE_RESOURCE_MANAGER_URL: azureResourceManagerUrl
  AZURE_CLIENT_ID: identityClientId
  ACI_JOB_IDENTITY_ID: jobsIdentityId
  ACI_REGISTRY_SERVER: aciRegistryServer
  ACI_REGISTRY_USERNAME: aciRegistryUsername
  ACI_KEEP_FAILED_GROUPS: 'false'
  OMNIA_SUBNET_ID: omniaSubnetId
  OMNIA_LOG_ANALYTICS_WORKSPACE_ID: omniaLogAnalyticsWorkspaceId
  RADIX_SCHEDULER_URL_TEMPLATE: radixSchedulerUrlTemplate
}

// --- Schedules ---------------------------------------------------------------------------------------------
var scheduleAppSettings = {
  SCHEDULE_TICK: '0 * * * * *'
  SCHEDULE_WEEKDAY_DIALECT: 'unix'
  SCHEDULE_CONCURRENCY_POLICY: 'Allow'
  SCHEDULE_STARTING_DEADLINE_SECONDS: '3600'
  SCHEDULE_HISTORY_LIMIT: '100'
  SCHEDULE_SUSPEND_AFTER_FAILURES: '0'
}

// --- Webhooks (README "Webhooks") ----------------------------------------------------------------------------
var webhookAppSettings = {
  WEBHOOK_ALLOW_LOCAL: 'false'
  WEBHOOK_ALLOWED_HOSTS: ''
  WEBHOOK_TIMEOUT_SECONDS: '10'
  WEBHOOK_RETRY_HOURS: '24'
  WEBHOOK_RETRY_FIRST_SECONDS: '5'
  WEBHOOK_RETRY_MAX_SECONDS: '3600'
  WEBHOOK_SECRET_GRACE_SECONDS: '86400'
}

// --- Secrets: Key Vault references (resolved with the user-assigned identity) or empty ---------------------
var secretAppSettings = {
  DMSS_APP_ACCESS_KEY: (useKeyVault && !empty(dmssAppAccessKeySecretName)) ? '${kvPrefix}${dmssAppAccessKeySecretName})' : ''
  ACI_REGISTRY_PASSWORD: (useKeyVault && !empty(aciRegistryPasswordSecretName)) ? '${kvPrefix}${aciRegistryPasswordSecretName})' : ''
  OMNIA_LOG_ANALYTICS_WORKSPACE_KEY: (useKeyVault && !empty(omniaLogAnalyticsWorkspaceKeySecretName)) ? '${kvPrefix}${omniaLogAnalyticsWorkspaceKeySecretName})' : ''
}

// --- Durable Functions backend: host.json is overridden by app settings, so one host.json serves both -------
var durableTaskSchedulerAppSettings = {
  DURABLE_TASK_SCHEDULER_CONNECTION_STRING: 'Endpoint=${dtsEndpoint};Authentication=ManagedIdentity;ClientID=${identityClientId}'
  TASKHUB_NAME: taskHubName
  AzureFunctionsJobHost__extensions__durableTask__hubName: taskHubName
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__type: 'azureManaged'
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'
}
var durableAppSettings = (durableBackend == 'DurableTaskScheduler') ? durableTaskSchedulerAppSettings : {}

// --- Never overridable: local runners execute code on the app's host ----------------------------------------
var enforcedAppSettings = {
  ENABLE_LOCAL_RUNNERS: 'false'
}

var allAppSettings = union(
  jobAppSettings,
  callerAppSettings,
  dmssAppSettings,
  containerAppSettings,
  scheduleAppSettings,
  webhookAppSettings,
  appSettingsOverrides,
  secretAppSettings,
  hostAppSettings,
  durableAppSettings,
  enforcedAppSettings
)

resource site 'Microsoft.Web/sites@2023-12-01' existing = {
  name: name
}

resource appSettings 'Microsoft.Web/sites/config@2023-12-01' = {
  parent: site
  name: 'appsettings'
  properties: allAppSettings
  dependsOn: [
    functionApp
  ]
}

module auth '../core/host/appservice-auth.bicep' = if (enableEntraAuth) {
  name: '${serviceName}-entra-auth'
  params: {
    siteName: name
    clientId: entraClientId
    allowedAudiences: entraAllowedAudiences
    allowedApplications: entraAllowedApplications
    requireAuthentication: entraRequireAuthentication
  }
  dependsOn: [
    appSettings
  ]
}

output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = functionApp.outputs.uri
output DM_JOB_URL string = jobAppSettings.DM_JOB_URL
